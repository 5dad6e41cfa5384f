%% One check of the feed: learn the newest version, fetch that version's manifest and signature from
%% its immutable location, verify both (key, trusted comment naming app and version), refuse an older
%% version than the running one unless pinned, pick this node's target, check its glibc floor; then
%% download and verify the file the agent chooses (the tarball, or an upgrade package) by the signed
%% entry's size and sha256. Nothing on the node changes here but state/downloads/.
-module(xrel_node_feed).
-export([check/1, download/3, glibc_version/0]).

-define(MANIFEST, "xrel-manifest.json").

%% check(Config) -> up_to_date | {update, #{version, entry}} | {error, Reason}
check(Config) ->
    guarded(fun() ->
        Vsn = wanted_version(Config),
        case newer(Vsn, Config) of
            false -> up_to_date;
            true ->
                Manifest = signed_manifest(Config, Vsn),
                Entry = entry(Manifest, maps:get(target, Config)),
                glibc_ok(Entry),
                {update, #{version => Vsn, entry => Entry}}
        end
    end).

%% download(Config, Vsn, FileEntry) -> {ok, Path} | {error, Reason}: a file the signed manifest lists
%% for Vsn (#{file, size, sha256}), in state/downloads/, resumed, checked
download(Config, Vsn, FileEntry) ->
    guarded(fun() -> {ok, tarball(Config, Vsn, FileEntry)} end).

guarded(Fun) ->
    try Fun()
    catch
        throw:{refused, Reason} -> {error, Reason};
        %% whatever the feed sends (a manifest of the wrong shape...) is refused, never a crash of the agent
        error:Reason:Stack ->
            {error, lists:flatten(io_lib:format("checking the feed failed: ~s (at ~s)",
                                                [xrel_node_http:describe(Reason), where(Stack)]))}
    end.

where([{M, F, A, _} | _]) -> io_lib:format("~s:~s/~b", [M, F, if is_list(A) -> length(A); true -> A end]);
where(_) -> "?".

fail(Format, Args) -> throw({refused, lists:flatten(io_lib:format(Format, Args))}).

wanted_version(#{pin := Pin}) when Pin =/= undefined -> release_version(Pin, "XREL_NODE_PIN");
wanted_version(Config) ->
    Url = xrel_node_config:latest_url(Config),
    Manifest = json(fetch(Url, Config), Url),
    release_version(field(Manifest, <<"version">>, Url), Url).

%% the version goes into URLs and versions/<dir>: SemVer only
release_version(V, Where) ->
    case xrel_node_vsn:valid(V) of
        true when is_binary(V) -> binary_to_list(V);
        true -> V;
        false -> fail("~s names ~0tp, not a release version", [Where, V])
    end.

newer(Vsn, #{skip := Vsn}) -> false;  % rolled back from before: wait for a newer one
newer(Vsn, #{running := Running, pin := Pin}) ->
    case xrel_node_vsn:compare(Vsn, Running) of
        eq -> false;
        gt -> true;
        lt when Pin =:= Vsn -> true;
        lt -> fail("the feed offers ~s, older than the running ~s (a replayed manifest?); "
                   "set XREL_NODE_PIN=~s to go back on purpose", [Vsn, Running, Vsn])
    end.

signed_manifest(Config = #{app := App, public_key := Key}, Vsn) ->
    Url = xrel_node_config:version_url(Config, Vsn, ?MANIFEST),
    Data = fetch(Url, Config),
    Sig = fetch(Url ++ ".minisig", Config),
    Expected = iolist_to_binary(["xrel dist ", App, " ", Vsn, " manifest"]),
    case xrel_minisign:verify(Data, Sig, Key) of
        {ok, Expected} -> ok;
        {ok, Other} -> fail("~s is signed for \"~s\", not \"~s\"", [Url, Other, Expected]);
        {error, Why} -> fail("~s: signature check failed (~p)", [Url, Why])
    end,
    Manifest = json(Data, Url),
    Named = field(Manifest, <<"version">>, Url),
    case binary_to_list(Named) of
        Vsn -> Manifest;
        V -> fail("~s names version ~s, not ~s", [Url, V, Vsn])
    end.

entry(Manifest, Target) ->
    T = list_to_binary(Target),
    Mine = [E || E <- field(Manifest, <<"targets">>, "the manifest"),
                 maps:get(<<"target">>, E, null) =:= T orelse lists:member(T, maps:get(<<"aliases">>, E, []))],
    case Mine of
        [E | _] -> E;
        [] -> fail("the manifest has no entry for this node's target ~s", [Target])
    end.

glibc_ok(#{<<"libc">> := <<"glibc">>, <<"glibc_floor">> := Floor}) when is_binary(Floor) ->
    case glibc_version() of
        undefined -> ok;  % not found (no getconf, no ldd): the release's own loader will tell
        Have ->
            case xrel_node_vsn:compare(Have ++ ".0", binary_to_list(Floor) ++ ".0") of
                lt -> fail("the release needs glibc ~s; this node has ~s", [Floor, Have]);
                _ -> ok
            end
    end;
glibc_ok(_) -> ok.

glibc_version() ->
    Out = os:cmd("getconf GNU_LIBC_VERSION 2>/dev/null || ldd --version 2>/dev/null | head -n 1"),
    case re:run(Out, "(\\d+\\.\\d+)\\s*$", [{capture, all_but_first, list}, multiline]) of
        {match, [V]} -> V;
        nomatch -> undefined
    end.

tarball(Config = #{root := Root}, Vsn, Entry) ->
    File = binary_to_list(field(Entry, <<"file">>, "the manifest entry")),
    check_name(File),
    Size = field(Entry, <<"size">>, File),
    Sha = string:lowercase(binary_to_list(field(Entry, <<"sha256">>, File))),
    is_integer(Size) andalso Size >= 0 andalso length(Sha) =:= 64
        orelse fail("the manifest entry for ~s has a malformed size or sha256", [File]),
    Downloads = xrel_node_state:path(Root, downloads),
    Path = filename:join(Downloads, File),
    forget_others(Downloads, [File, File ++ ".part"]),
    Url = xrel_node_config:version_url(Config, Vsn, File),
    case xrel_node_http:download(Url, Path, Size, Config) of
        ok -> ok;
        {error, Why} -> fail("~s: download failed: ~s", [Url, xrel_node_http:describe(Why)])
    end,
    case sha256_file(Path) of
        Sha -> Path;
        Got -> _ = file:delete(Path), fail("~s: sha256 ~s, the signed manifest says ~s; deleted", [File, Got, Sha])
    end.

%% downloads/ holds the one tarball being fetched: older partial downloads go
forget_others(Dir, Keep) ->
    case file:list_dir(Dir) of
        {ok, Names} -> [file:delete(filename:join(Dir, N)) || N <- Names, not lists:member(N, Keep)], ok;
        {error, _} -> ok
    end.

%% a manifest names files, never paths
check_name(File) ->
    case File =:= filename:basename(File) andalso hd(File) =/= $. of
        true -> ok;
        false -> fail("the manifest names an unsafe file ~p", [File])
    end.

sha256_file(Path) ->
    {ok, Fd} = file:open(Path, [read, raw, binary]),
    try hash_loop(Fd, crypto:hash_init(sha256))
    after file:close(Fd)
    end.

hash_loop(Fd, Ctx) ->
    case file:read(Fd, 1 bsl 20) of
        {ok, Bin} -> hash_loop(Fd, crypto:hash_update(Ctx, Bin));
        eof -> string:lowercase(binary_to_list(binary:encode_hex(crypto:hash_final(Ctx))))
    end.

fetch(Url, Config) ->
    case xrel_node_http:get(Url, Config) of
        {ok, Body} -> Body;
        {error, Why} -> fail("~s: ~s", [Url, xrel_node_http:describe(Why)])
    end.

json(Data, Url) ->
    case xrel_node_json:decode(Data) of
        {ok, Map} when is_map(Map) -> Map;
        _ -> fail("~s is not a JSON manifest", [Url])
    end.

field(Map, Key, Where) ->
    case maps:get(Key, Map, null) of
        null -> fail("~s lacks ~s", [Where, Key]);
        V -> V
    end.
