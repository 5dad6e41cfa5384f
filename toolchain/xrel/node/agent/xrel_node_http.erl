%% HTTP(S) for the agent: every request in a client of its own (httpc keeps connections alive across
%% changed TLS options), TLS verified (peer and host name) against the OS CA store or a configured
%% bundle, redirects followed by hand so each hop is verified for its own host, downloads resumable.
-module(xrel_node_http).
-export([get/2, download/4]).

-define(MAX_REDIRECTS, 5).
-define(CHUNK_TIMEOUT, 60000).

%% Opts: #{cacertfile => undefined | file path}
%% get(Url, Opts) -> {ok, Body} | {error, Reason}
get(Url, Opts) ->
    with_client(fun(Client) -> get(Client, Url, Opts, ?MAX_REDIRECTS) end).

get(Client, Url, Opts, Hops) ->
    case request(Client, Url, [], Opts, [{body_format, binary}]) of
        {ok, {{_, 200, _}, _Headers, Body}} -> {ok, Body};
        {ok, {{_, Status, _}, Headers, _}} -> redirect(Status, Headers, Url, Hops,
                                                       fun(Next) -> get(Client, Next, Opts, Hops - 1) end);
        {error, Reason} -> {error, Reason}
    end.

%% download(Url, Path, Size, Opts) -> ok | {error, Reason}
%%   Writes Path ++ ".part" (resumed with a Range request when a shorter one exists), renames it to Path
%%   when exactly Size bytes arrived. The caller checks the digest.
download(Url, Path, Size, Opts) ->
    Part = Path ++ ".part",
    ok = filelib:ensure_dir(Part),
    Have = case filelib:file_size(Part) of
               N when N > Size -> file:delete(Part), 0;
               N -> N
           end,
    Result = case Have of
                 Size -> ok;
                 _ -> with_client(fun(Client) -> fetch_to(Client, Url, Part, Have, Size, Opts, ?MAX_REDIRECTS) end)
             end,
    case {Result, filelib:file_size(Part)} of
        {ok, Size} -> file:rename(Part, Path);
        {ok, Got} -> {error, {size_mismatch, Got, Size}};
        {Error, _} -> Error
    end.

fetch_to(Client, Url, Part, Have, Size, Opts, Hops) ->
    Range = [{"range", "bytes=" ++ integer_to_list(Have) ++ "-"} || Have > 0],
    case request(Client, Url, Range, Opts, [{sync, false}, {stream, self}]) of
        {ok, Ref} -> receive_stream(Ref, Client, Url, Part, Have, Size, Opts, Hops);
        {error, Reason} -> {error, Reason}
    end.

receive_stream(Ref, Client, Url, Part, Have, Size, Opts, Hops) ->
    receive
        {http, {Ref, stream_start, Headers}} ->
            %% a server that ignores the Range sends the whole file again
            Mode = case proplists:is_defined("content-range", Headers) of
                       true when Have > 0 -> [append, raw, binary];
                       _ -> [write, raw, binary]
                   end,
            {ok, Fd} = file:open(Part, Mode),
            try write_stream(Ref, Fd, Size - (if hd(Mode) =:= append -> Have; true -> 0 end))
            after file:close(Fd)
            end;
        {http, {Ref, {{_, Status, _}, Headers, _}}} ->
            redirect(Status, Headers, Url, Hops,
                     fun(Next) -> fetch_to(Client, Next, Part, Have, Size, Opts, Hops - 1) end);
        {http, {Ref, {error, Reason}}} -> {error, Reason}
    after ?CHUNK_TIMEOUT ->
        httpc:cancel_request(Ref, Client),
        {error, timeout}
    end.

write_stream(Ref, Fd, Left) ->
    receive
        {http, {Ref, stream, Bin}} when byte_size(Bin) =< Left ->
            ok = file:write(Fd, Bin),
            write_stream(Ref, Fd, Left - byte_size(Bin));
        {http, {Ref, stream, _}} -> {error, larger_than_the_manifest_says};
        {http, {Ref, stream_end, _}} -> ok;
        {http, {Ref, {error, Reason}}} -> {error, Reason}
    after ?CHUNK_TIMEOUT ->
        {error, timeout}
    end.

redirect(Status, Headers, Url, Hops, Follow) when Status >= 301, Status =< 308, Status =/= 304 ->
    case proplists:get_value("location", Headers) of
        undefined -> {error, {http_status, Status, no_location}};
        _ when Hops =< 0 -> {error, too_many_redirects};
        Location ->
            Next = uri_string:resolve(Location, Url),
            case {scheme(Url), scheme(Next)} of
                {"https", "http"} -> {error, {redirect_to_plain_http, Next}};
                _ -> Follow(Next)
            end
    end;
redirect(Status, _, _, _, _) -> {error, {http_status, Status}}.

request(Client, Url, Headers, Opts, Options) ->
    case uri_string:parse(Url) of
        #{scheme := Scheme, host := Host} when Scheme =:= "https"; Scheme =:= "http" ->
            HttpOpts = [{autoredirect, false}, {connect_timeout, 15000}, {timeout, 120000}
                        | [{ssl, ssl_options(Host, Opts)} || Scheme =:= "https"]],
            httpc:request(get, {Url, [{"user-agent", "xrel-node"} | Headers]}, HttpOpts, Options, Client);
        _ -> {error, {bad_url, Url}}
    end.

scheme(Url) ->
    case uri_string:parse(Url) of
        #{scheme := S} -> string:lowercase(S);
        _ -> ""
    end.

ssl_options(Host, Opts) ->
    CA = case maps:get(cacertfile, Opts, undefined) of
             undefined -> {cacerts, os_cacerts()};
             File -> {cacertfile, File}
         end,
    [{verify, verify_peer}, CA, {depth, 10},
     {customize_hostname_check, [{match_fun, fun match_host/2}]}
     | sni(Host)].

%% a feed named by an IP address matches the certificate's IP entries; names match as HTTPS says
match_host({dns_id, Ref}, {iPAddress, Bytes}) ->
    case inet:parse_address(Ref) of
        {ok, IP} -> tuple_to_list(IP) =:= Bytes;
        _ -> false
    end;
match_host(Ref, Presented) -> (public_key:pkix_verify_hostname_match_fun(https))(Ref, Presented).

%% an IP address is checked against the certificate's IP entries, a name by SNI and DNS entries
sni(Host) ->
    case inet:parse_address(Host) of
        {ok, _} -> [];
        _ -> [{server_name_indication, Host}]
    end.

os_cacerts() ->
    try public_key:cacerts_get()
    catch _:_ -> []
    end.

with_client(Fun) ->
    {ok, _} = application:ensure_all_started(ssl),
    {ok, Client} = inets:start(httpc, [{profile, xrel_node}], stand_alone),
    try Fun(Client)
    after
        unlink(Client),  % a stand-alone client is linked to its starter and stops with `shutdown`
        inets:stop(stand_alone, Client)
    end.
