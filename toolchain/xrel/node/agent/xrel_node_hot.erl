%% Hot upgrades in place with release_handler: an upgrade package from the running version (built by
%% `xrel dist --upgrade-from`) is unpacked into the running release's root, every process whose module
%% has a code_change is pre-flighted in a peer node on a copy of its state, the relup is installed,
%% runtime config (runtime.exs) is evaluated again, and only a healthy version is made permanent.
-module(xrel_node_hot).
-export([package/2, install/2, keep/1, back/2, reinstall/1, installed_old/1, reapply_runtime_config/0, preflight/2,
         write_releases/1, ensure_releases_at_boot/0, running_release/0]).

-define(PEER_TIMEOUT, 120000).

%% package(ManifestEntry, RunningVsn) -> {ok, UpgradeEntry} | none
package(Entry, Running) ->
    R = list_to_binary(Running),
    case [U || U <- maps:get(<<"upgrades">>, Entry, []), maps:get(<<"from_version">>, U, null) =:= R] of
        [U | _] -> {ok, U};
        [] -> none
    end.

%% install(Vsn, PackageFile) -> ok | {error, Reason}; on an error the node runs what it ran before
install(Vsn, Package) ->
    {Name, Running} = init:script_id(),
    Root = code:root_dir(),
    PkgName = Name ++ "-" ++ Vsn,
    try
        ensure_releases(Root, Name, Running),
        same_apps(upgrade_info_of(Package, Vsn)),
        {ok, _} = file:copy(Package, filename:join([Root, "releases", PkgName ++ ".tar.gz"])),
        step(release_handler:unpack_release(PkgName), unpack),
        case preflight(Root, Vsn) of
            ok -> ok;
            {error, Why} -> _ = release_handler:remove_release(Vsn), throw({hot, Why})
        end,
        case release_handler:install_release(Vsn) of
            {ok, _From, _} -> ok;
            {error, Why2} -> _ = release_handler:remove_release(Vsn), throw({hot, {install_release, Why2}})
        end,
        reapply_runtime_config()
    catch
        throw:{hot, Reason} -> {error, Reason}
    end.

step({ok, _}, _) -> ok;
step({error, Why}, What) -> throw({hot, {What, Why}}).

%% A mix release has no RELEASES file; release_handler reads it once at its start, so it is written
%% when a version is unpacked (write_releases/1) or at the agent's first boot (then release_handler
%% restarts to read it); an entry made later would list no libraries and break a downgrade
ensure_releases(Root, _Name, _Running) ->
    case filelib:is_file(filename:join([Root, "releases", "RELEASES"])) of
        true -> ok;
        false -> throw({hot, no_RELEASES_file})
    end.

%% write_releases(ReleaseRoot) -> ok | {error, Why}: RELEASES naming the release unpacked there
write_releases(Root) ->
    Rels = filename:join(Root, "releases"),
    case file:read_file(filename:join(Rels, "start_erl.data")) of
        {ok, Data} ->
            [_Erts, Vsn] = string:lexemes(binary_to_list(string:trim(Data)), " "),
            case filelib:wildcard(filename:join([Rels, Vsn, "*.rel"])) of
                [RelFile] -> release_handler:create_RELEASES(Root, Rels, RelFile, []);
                _ -> {error, {no_rel_file, Vsn}}
            end;
        {error, Why} -> {error, {start_erl_data, Why}}
    end.

%% at the agent's boot: a release installed without one gets RELEASES, and release_handler reads it
ensure_releases_at_boot() ->
    Root = code:root_dir(),
    case filelib:is_file(filename:join([Root, "releases", "RELEASES"])) of
        true -> ok;
        false ->
            case write_releases(Root) of
                ok ->
                    _ = supervisor:terminate_child(sasl_sup, release_handler),
                    _ = supervisor:restart_child(sasl_sup, release_handler),
                    ok;
                Error -> Error
            end
    end.

%% the package was built against exactly the applications of the running release (else: the cold switch)
same_apps(Info) ->
    {Name, Running} = running_release(),
    {ok, [{release, _, _, Apps}]} = file:consult(filename:join([code:root_dir(), "releases", Running, Name ++ ".rel"])),
    Have = maps:from_list([{atom_to_binary(element(1, A)), list_to_binary(element(2, A))} || A <- Apps]),
    Wrong = [{App, Want, maps:get(App, Have, none)}
             || {App, Want} <- maps:to_list(maps:get(<<"from_apps">>, Info, #{})), maps:get(App, Have, none) =/= Want],
    case Wrong of
        [] -> ok;
        _ -> throw({hot, {built_against_other_apps, Wrong}})
    end.

%% the release installed in this VM now: the boot script's, or the one a hot upgrade installed since
running_release() ->
    {Name, Boot} = init:script_id(),
    Releases = try release_handler:which_releases() catch _:_ -> [] end,
    case [V || {_, V, _, current} <- Releases] ++ [V || {_, V, _, permanent} <- Releases] of
        [Vsn | _] -> {Name, Vsn};
        [] -> {Name, Boot}
    end.

%% xrel-upgrade.json read from the package itself, before anything is unpacked
upgrade_info_of(Package, Vsn) ->
    Member = "releases/" ++ Vsn ++ "/xrel-upgrade.json",
    case erl_tar:extract(Package, [compressed, memory, {files, [Member]}]) of
        {ok, [{_, Text}]} ->
            case xrel_node_json:decode(Text) of
                {ok, Info} when is_map(Info) -> Info;
                _ -> throw({hot, malformed_upgrade_info})
            end;
        _ -> throw({hot, no_upgrade_info})
    end.

keep(Vsn) -> release_handler:make_permanent(Vsn).

%% installed_old(Vsn): this root was hot-upgraded from Vsn (release_handler still has it)
installed_old(Vsn) ->
    try lists:keymember(Vsn, 2, release_handler:which_releases(old))
    catch _:_ -> false
    end.

%% reinstall(Vsn) -> ok | {error, Why}: a release unpacked here before, through the relups (down to an
%% older one, or up again to one a downgrade left)
reinstall(Old) ->
    case release_handler:install_release(Old) of
        {ok, _, _} -> reapply_runtime_config();
        {error, Why} -> {error, {install_release, Why}}
    end.

%% back(OldVsn, NewVsn): the relup's down instructions, then the new release removed
back(Old, New) ->
    case release_handler:install_release(Old) of
        {ok, _, _} ->
            _ = release_handler:make_permanent(Old),
            _ = release_handler:remove_release(New),
            reapply_runtime_config();
        {error, Why} -> {error, Why}
    end.

%% runtime.exs again: install_release resets application env to the new .app files and sys.config
reapply_runtime_config() ->
    case application:get_env(elixir, config_provider_init) of
        {ok, #{providers := Providers}} when Providers =/= [] ->
            Runtime = lists:foldl(fun({Mod, State}, Acc) -> Mod:load(Acc, resolve(State)) end, [], Providers),
            Base = [{App, application:get_all_env(App)} || {App, _} <- Runtime],
            application:set_env('Elixir.Config.Reader':merge(Base, Runtime), [{persistent, true}]);
        _ -> ok
    end.

resolve({{system, Var, Path}, Opts}) ->
    {iolist_to_binary([os:getenv(binary_to_list(Var), ""), Path]), Opts};
resolve(State) -> State.

%% preflight(Root, Vsn) -> ok | {error, Reason}: every live process whose module the upgrade changes
%% with a code_change runs the NEW code_change on a copy of its state in a peer node first
preflight(Root, Vsn) ->
    Info = upgrade_info(Root, Vsn),
    case lists:member(<<"xrel_node">>, maps:get(<<"changed_apps">>, Info, [])) of
        true -> {error, "the node agent itself changed: a restart installs it"};
        false -> preflight_states(Root, Vsn, Info)
    end.

preflight_states(Root, Vsn, Info) ->
    Mods = [binary_to_atom(M) || [_App, M] <- maps:get(<<"modules_with_code_change">>, Info, [])],
    Procs = [{M, Pid} || M <- Mods, Pid <- processes_running(M)],
    case Procs of
        [] -> ok;
        _ -> in_peer(Root, Vsn, fun(Peer) -> check_all(Peer, Procs) end)
    end.

upgrade_info(Root, Vsn) ->
    case file:read_file(filename:join([Root, "releases", Vsn, "xrel-upgrade.json"])) of
        {ok, Text} ->
            {ok, Info} = xrel_node_json:decode(Text),
            Info;
        {error, _} -> #{}
    end.

processes_running(Mod) ->
    Procs = try release_handler_1:get_supervised_procs() catch _:_ -> [] end,
    lists:usort([Pid || {_Sup, _Name, Pid, Mods} <- Procs, is_pid(Pid), is_list(Mods), lists:member(Mod, Mods)]).

check_all(_Peer, []) -> ok;
check_all(Peer, [{Mod, Pid} | Rest]) ->
    case code_change_in(Peer, Mod, Pid) of
        ok -> check_all(Peer, Rest);
        {error, Why} -> {error, {code_change_would_fail, Mod, Why}}
    end.

code_change_in(Peer, Mod, Pid) ->
    OldVsn = case lists:keyfind(vsn, 1, Mod:module_info(attributes)) of
                 {vsn, [V]} -> V;
                 _ -> undefined
             end,
    try sys:get_state(Pid, 10000) of
        State ->
            Args = case State of
                       {StateName, Data} when is_atom(StateName) -> [OldVsn, StateName, Data, []];
                       _ -> [OldVsn, State, []]
                   end,
            try peer:call(Peer, Mod, code_change, Args, ?PEER_TIMEOUT) of
                {ok, _} -> ok;
                {ok, _, _} -> ok;
                Other -> {error, {returned, Other}}
            catch
                Class:Reason -> {error, {Class, Reason}}
            end
    catch
        _:Why -> {error, {no_state, Why}}
    end.

%% a peer VM of the release's own ERTS with the new release's code first on its path
in_peer(Root, Vsn, Fun) ->
    Erl = filename:join([Root, "erts-" ++ erlang:system_info(version), "bin", "erl"]),
    Ebins = new_ebins(Root, Vsn),
    Args = ["-boot", filename:join([Root, "releases", Vsn, "start_clean"]),
            "-boot_var", "RELEASE_LIB", filename:join(Root, "lib"), "-pa" | Ebins],
    case peer:start_link(#{connection => standard_io, exec => Erl, args => Args, wait_boot => 60000}) of
        {ok, Peer} ->
            try Fun(Peer) after peer:stop(Peer) end;
        {ok, Peer, _Node} ->
            try Fun(Peer) after peer:stop(Peer) end;
        {error, Why} -> {error, {peer, Why}}
    end.

new_ebins(Root, Vsn) ->
    {Name, _} = init:script_id(),
    {ok, [{release, _, _, Apps}]} = file:consult(filename:join([Root, "releases", Vsn, Name ++ ".rel"])),
    %% .rel entries are {App, Vsn}, {App, Vsn, Type}, {App, Vsn, Incl} or {App, Vsn, Type, Incl}
    [filename:join([Root, "lib", atom_to_list(element(1, A)) ++ "-" ++ element(2, A), "ebin"]) || A <- Apps].
