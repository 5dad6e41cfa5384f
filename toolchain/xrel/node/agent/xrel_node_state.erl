%% The node's layout (NODE.md): ROOT/versions/<dir>, the ROOT/current symlink, and ROOT/state/ with
%% node.state (key=value lines, replaced atomically; keys this module does not know are kept) and
%% node.log (one line per event), shared with bin/xrel-node.
-module(xrel_node_state).
-export([read/1, write/2, update/2, log/3, flip/2, unpack/3, prune/1, path/2, dir/1]).

path(Root, state) -> filename:join([Root, "state", "node.state"]);
path(Root, log) -> filename:join([Root, "state", "node.log"]);
path(Root, downloads) -> filename:join([Root, "state", "downloads"]);
path(Root, trigger) -> filename:join([Root, "state", "check-now"]);
path(Root, versions) -> filename:join(Root, "versions").

%% read(Root) -> #{Key => Value} (binaries); #{} when there is no state file
read(Root) ->
    case file:read_file(path(Root, state)) of
        {ok, Text} ->
            maps:from_list([list_to_tuple(binary:split(L, <<"=">>))
                            || L <- binary:split(Text, <<"\n">>, [global]), binary:match(L, <<"=">>) =/= nomatch]);
        {error, enoent} -> #{}
    end.

write(Root, State) ->
    Lines = [[K, $=, V, $\n] || {K, V} <- lists:sort(maps:to_list(State#{<<"updated">> => now_text()}))],
    File = path(Root, state),
    Tmp = File ++ ".tmp",
    ok = file:write_file(Tmp, Lines),
    ok = file:rename(Tmp, File).

%% update(Root, Changes): read, merge (values as strings, binaries or integers), write
update(Root, Changes) ->
    State = maps:merge(read(Root), maps:from_list([{bin(K), bin(V)} || {K, V} <- maps:to_list(Changes)])),
    write(Root, State),
    State.

%% log(Root, Event, [{Key, Value}]) appends `<UTC time> <event> key=value ...`
log(Root, Event, Fields) ->
    Time = calendar:system_time_to_rfc3339(erlang:system_time(second), [{offset, "Z"}]),
    Line = [Time, $\s, bin(Event), [[$\s, bin(K), $=, quote(bin(V))] || {K, V} <- Fields], $\n],
    logger:notice("xrel-node: ~ts", [string:trim(iolist_to_binary(Line))]),
    file:write_file(path(Root, log), Line, [append]).

quote(V) ->
    case binary:match(V, [<<" ">>, <<"\"">>, <<"=">>]) of
        nomatch when V =/= <<>> -> V;
        _ -> [$", binary:replace(V, <<"\"">>, <<"'">>, [global]), $"]
    end.

%% dir(State): the versions/ dir the node runs from (an empty `dir` means `current`'s)
dir(State) ->
    case maps:get(<<"dir">>, State, <<>>) of
        <<>> -> maps:get(<<"current">>, State, <<>>);
        Dir -> Dir
    end.

%% flip(Root, Dir): ROOT/current -> versions/Dir, atomically (a new symlink renamed over the old)
flip(Root, Dir) ->
    Tmp = filename:join(Root, ".current.tmp"),
    _ = file:delete(Tmp),
    ok = file:make_symlink(filename:join("versions", Dir), Tmp),
    ok = file:rename(Tmp, filename:join(Root, "current")).

%% unpack(Root, Vsn, Tarball) -> ok | {error, Reason}: versions/.Vsn.tmp, checked, renamed to versions/Vsn
unpack(Root, Vsn, Tarball) ->
    Final = filename:join(path(Root, versions), Vsn),
    case filelib:is_dir(Final) of
        true -> ok;  % renamed into place only when complete
        false ->
            Tmp = filename:join(path(Root, versions), "." ++ Vsn ++ ".tmp"),
            _ = file:del_dir_r(Tmp),
            ok = filelib:ensure_dir(filename:join(Tmp, "x")),
            case erl_tar:extract(Tarball, [compressed, {cwd, Tmp}]) of
                ok -> checked_rename(Tmp, Final, Vsn);
                {error, Reason} -> _ = file:del_dir_r(Tmp), {error, {unpack, Reason}}
            end
    end.

checked_rename(Tmp, Final, Vsn) ->
    case file:read_file(filename:join([Tmp, "releases", "start_erl.data"])) of
        {ok, Data} ->
            case string:lexemes(binary_to_list(string:trim(Data)), " ") of
                [_Erts, Vsn] -> file:rename(Tmp, Final);
                _ -> _ = file:del_dir_r(Tmp), {error, {tarball_is_not_version, Vsn, Data}}
            end;
        {error, _} -> _ = file:del_dir_r(Tmp), {error, not_a_release_tarball}
    end.

%% prune(Root): remove versions/ dirs other than the state's dir and previous_dir
prune(Root) ->
    State = read(Root),
    Keep = [binary_to_list(maps:get(K, State, <<>>)) || K <- [<<"dir">>, <<"previous_dir">>]],
    {ok, Names} = file:list_dir(path(Root, versions)),
    [file:del_dir_r(filename:join(path(Root, versions), N)) || N <- Names, not lists:member(N, Keep),
                                                                 hd(N) =/= $.],
    ok.

%% state values and log fields are one line each
bin(V) when is_binary(V) -> binary:replace(V, [<<"\r\n">>, <<"\n">>, <<"\r">>], <<" ">>, [global]);
bin(V) when is_integer(V) -> integer_to_binary(V);
bin(V) when is_atom(V) -> atom_to_binary(V);
bin(V) -> bin(unicode:characters_to_binary(V)).

now_text() -> integer_to_binary(erlang:system_time(second)).
