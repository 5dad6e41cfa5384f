%% HTTP(S) for the agent: every request in a client of its own (httpc keeps connections alive across
%% changed TLS options), TLS verified (peer and host name) against the OS CA store or a configured
%% bundle, redirects followed by hand so each hop is verified for its own host, downloads resumable.
-module(xrel_node_http).
-export([get/2, download/4, describe/1]).

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
            %% a 206 continues the partial file where it ends; a server that ignores the Range sends the
            %% whole file again (200)
            case continuation(proplists:get_value("content-range", Headers), Have) of
                append -> stream_to(Ref, Part, [append], Size - Have);
                write -> stream_to(Ref, Part, [write], Size);
                mismatch -> httpc:cancel_request(Ref, Client), _ = file:delete(Part),
                            {error, {unexpected_content_range, Have}}
            end;
        {http, {Ref, {{_, 416, _}, _, _}}} ->
            %% the partial file is no prefix of the server's: start over at the next check
            _ = file:delete(Part),
            {error, {http_status, 416}};
        {http, {Ref, {{_, Status, _}, Headers, _}}} ->
            redirect(Status, Headers, Url, Hops,
                     fun(Next) -> fetch_to(Client, Next, Part, Have, Size, Opts, Hops - 1) end);
        {http, {Ref, {error, Reason}}} -> {error, Reason}
    after ?CHUNK_TIMEOUT ->
        httpc:cancel_request(Ref, Client),
        {error, timeout}
    end.

%% append: a 206 that continues the partial file; write: the whole file (a 200); mismatch: another range
continuation(undefined, _) -> write;
continuation("bytes " ++ Range, Have) when Have > 0 ->
    case string:prefix(Range, integer_to_list(Have) ++ "-") of
        nomatch -> mismatch;
        _ -> append
    end;
continuation(_, _) -> mismatch.

stream_to(Ref, Part, Mode, Left) ->
    {ok, Fd} = file:open(Part, [raw, binary | Mode]),
    try write_stream(Ref, Fd, Left)
    after file:close(Fd)
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

%% describe(Reason) -> a one-line text for the log
describe({failed_connect, Info}) when is_list(Info) ->
    To = case lists:keyfind(to_address, 1, Info) of
             {to_address, {Host, Port}} -> io_lib:format(" to ~ts:~b", [Host, Port]);
             _ -> ""
         end,
    case lists:keyfind(inet, 1, Info) of
        {inet, _, {tls_alert, {Alert, Text}}} ->
            one_line(io_lib:format("TLS refused~s (~s): ~ts", [To, Alert, Text]));
        {inet, _, Why} -> one_line(io_lib:format("cannot connect~s: ~0tp", [To, Why]));
        false -> one_line(io_lib:format("cannot connect: ~0tp", [Info]))
    end;
describe({redirect_to_plain_http, Url}) -> "refused a redirect from https to plain http: " ++ Url;
describe({http_status, Status}) -> "HTTP status " ++ integer_to_list(Status);
describe({http_status, Status, no_location}) -> "HTTP status " ++ integer_to_list(Status) ++ " without a Location";
describe({size_mismatch, Got, Size}) -> io_lib:format("~b bytes arrived, the signed manifest says ~b", [Got, Size]);
describe(Other) -> one_line(io_lib:format("~0tp", [Other])).

one_line(Text) -> lists:flatten(lists:join(" ", string:lexemes(lists:flatten(Text), "\r\n\t "))).

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
        Down = erlang:monitor(process, Client),
        inets:stop(stand_alone, Client),
        %% its session table has a fixed name: the next client can start only once this one is gone
        receive {'DOWN', Down, process, Client, _} -> ok after 10000 -> ok end
    end.
