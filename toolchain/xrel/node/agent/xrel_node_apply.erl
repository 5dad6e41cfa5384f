%% Applying a verified newer version: hot, in place, when the manifest offers an upgrade package from
%% the running version and it installs (xrel_node_hot); else cold: unpack beside, flip ROOT/current,
%% stop the VM for the supervisor to start the new one. Either way the new version is on probation
%% until its health check passes; a failed one goes back (release_handler's down path, or a restart
%% into the previous version by bin/xrel-node prestart).
-module(xrel_node_apply).
-export([update/3, await_health/3, settle/1]).

-define(HEALTH_EVERY, 2000).

%% update(Config, Vsn, ManifestEntry) -> {Result, Config1}
%%   Result: {upgraded, Vsn} (hot, running it now) | {switching, Vsn} (cold) | {error, Reason}
update(C = #{root := Root, running := Running}, Vsn, Entry) ->
    case {xrel_node_hot:installed_old(Vsn), xrel_node_hot:package(Entry, Running)} of
        {true, _} ->  % unpacked in this root before (e.g. a pinned older version): release_handler goes there
            case in_place(C, Vsn, fun() -> xrel_node_hot:reinstall(Vsn) end, {upgraded, Vsn}) of
                {upgraded, _} = Done -> {Done, C#{running => Vsn}};
                Error -> {Error, C}
            end;
        {false, {ok, Upgrade}} ->
            case hot(C, Vsn, Upgrade) of
                {upgraded, _} = Done -> {Done, C#{running => Vsn}};
                {error, {code_change_would_fail, _, _} = Why} ->  % a restart would lose the state it keeps
                    Reason = Vsn ++ " refused: " ++ text(Why),
                    xrel_node_state:update(Root, #{rejected => Vsn, reason => Reason}),
                    xrel_node_state:log(Root, refused, [{version, Vsn}, {reason, Reason}]),
                    {{error, Why}, C};
                {error, Why} ->
                    xrel_node_state:log(Root, hot_refused, [{version, Vsn}, {reason, text(Why)}]),
                    {cold(C, Vsn, Entry), C}
            end;
        {false, none} -> {cold(C, Vsn, Entry), C}
    end.

cold(C = #{root := Root}, Vsn, Entry) ->
    case xrel_node_feed:download(C, Vsn, Entry) of
        {ok, Tarball} -> switch(C, Vsn, Tarball);
        {error, Reason} ->
            xrel_node_state:log(Root, refused, [{version, Vsn}, {reason, text(Reason)}]),
            {error, Reason}
    end.

switch(#{root := Root, running := Running, probation := Probation}, Vsn, Tarball) ->
    Result = xrel_node_state:unpack(Root, Vsn, Tarball),
    _ = file:delete(Tarball),
    case Result of
        ok ->
            %% release_handler reads RELEASES once at boot: the new version starts with one
            case xrel_node_hot:write_releases(filename:join([Root, "versions", Vsn])) of
                ok -> ok;
                {error, Why} -> xrel_node_state:log(Root, no_releases_file, [{version, Vsn}, {reason, text(Why)}])
            end,
            State = xrel_node_state:read(Root),
            xrel_node_state:update(Root, #{current => Vsn, dir => Vsn, previous => Running,
                                           previous_dir => xrel_node_state:dir(State),
                                           phase => probation, attempts => 0, failed => "", reason => "",
                                           hot_from => "", probation_until => deadline(Probation)}),
            xrel_node_state:flip(Root, Vsn),
            xrel_node_state:log(Root, switch, [{from, Running}, {to, Vsn}]),
            spawn(fun() -> timer:sleep(500), init:stop() end),
            {switching, Vsn};
        {error, Reason} ->
            xrel_node_state:log(Root, refused, [{version, Vsn}, {reason, text(Reason)}]),
            {error, Reason}
    end.

%% in place: the state says so first, so a VM lost during the install comes back on the old version
hot(C, Vsn, Upgrade) ->
    case xrel_node_feed:download(C, Vsn, Upgrade) of
        {error, Reason} -> {error, Reason};
        {ok, Package} ->
            Result = in_place(C, Vsn, fun() -> xrel_node_hot:install(Vsn, Package) end, {upgraded, Vsn}),
            _ = file:delete(Package),
            Result
    end.

%% in_place(Config, Vsn, Install, Done): the state says probation first, so a VM lost during the
%% install comes back on the old version; Install() -> ok | {error, Why}
in_place(C = #{root := Root, running := Running, probation := Probation}, Vsn, Install, Done) ->
    Before = xrel_node_state:read(Root),
    Dir = xrel_node_state:dir(Before),
    xrel_node_state:update(Root, #{current => Vsn, dir => Dir, previous => Running, previous_dir => Dir,
                                   phase => probation, attempts => 0, failed => "", reason => "",
                                   hot_from => Running, probation_until => deadline(Probation)}),
    xrel_node_state:log(Root, hot_upgrade, [{from, Running}, {to, Vsn}]),
    case Install() of
        ok ->
            Until = deadline(Probation),
            spawn(fun() -> await_health(C#{running => Vsn}, Until, {hot, Running}) end),
            Done;
        {error, Why} ->
            xrel_node_state:write(Root, Before),
            {error, Why}
    end.

%% await_health(Config, Until, cold | {hot, From}): healthy -> permanent; else back to the previous version
await_health(C = #{root := Root, running := Vsn}, Until, Mode) ->
    case health(C) of
        ok ->
            case Mode of
                {hot, _} -> ok = xrel_node_hot:keep(Vsn);
                cold -> ok
            end,
            xrel_node_state:update(Root, #{phase => healthy, attempts => 0, failed => "", hot_from => ""}),
            xrel_node_state:log(Root, healthy, [{version, Vsn}]),
            xrel_node_state:prune(Root);
        {error, Why} ->
            case erlang:system_time(second) >= Until of
                false -> timer:sleep(?HEALTH_EVERY), await_health(C, Until, Mode);
                true -> unhealthy(C, Mode, text(Why))
            end
    end.

unhealthy(#{root := Root, running := Vsn}, {hot, From}, Reason) ->
    xrel_node_state:log(Root, unhealthy, [{version, Vsn}, {reason, Reason}]),
    case xrel_node_hot:back(From, Vsn) of
        ok ->
            Why = Vsn ++ " failed its health check after a hot upgrade: " ++ Reason,
            xrel_node_state:update(Root, #{current => From, previous => "", previous_dir => "", phase => rolled_back,
                                           rejected => Vsn, reason => Why, hot_from => "", attempts => 0}),
            xrel_node_state:log(Root, rollback, [{from, Vsn}, {to, From}, {reason, Why}, {how, hot}]),
            xrel_node ! {running, From};
        {error, Down} ->  % the down path failed: a restart boots the old release (never made permanent)
            xrel_node_state:update(Root, #{failed => Reason ++ "; hot downgrade failed: " ++ text(Down)}),
            init:stop(1)
    end;
unhealthy(#{root := Root, running := Vsn}, cold, Reason) ->
    xrel_node_state:update(Root, #{failed => Reason}),
    xrel_node_state:log(Root, unhealthy, [{version, Vsn}, {reason, Reason}]),
    init:stop(1).

%% at boot: a hot upgrade in this dir that a restart undid (never made permanent) is over
settle(#{root := Root, running := Running}) ->
    State = xrel_node_state:read(Root),
    Lost = maps:get(<<"phase">>, State, <<>>) =:= <<"probation">>
        andalso maps:get(<<"hot_from">>, State, <<>>) =:= list_to_binary(Running)
        andalso maps:get(<<"current">>, State, <<>>) =/= list_to_binary(Running),
    case Lost of
        false -> ok;
        true ->
            Vsn = binary_to_list(maps:get(<<"current">>, State)),
            Why = Vsn ++ " (hot upgrade) was lost in a restart during its probation",
            xrel_node_state:update(Root, #{current => Running, previous => "", previous_dir => "",
                                           phase => rolled_back, rejected => Vsn, reason => Why, hot_from => "",
                                           attempts => 0}),
            xrel_node_state:log(Root, rollback, [{from, Vsn}, {to, Running}, {reason, Why}])
    end.

health(#{health_check := undefined}) -> ok;
health(#{health_check := {M, F}}) ->
    try M:F() of
        ok -> ok;
        true -> ok;
        {ok, _} -> ok;
        Other -> {error, {health_check_returned, Other}}
    catch
        Class:Reason -> {error, {health_check_raised, Class, Reason}}
    end.

deadline(Probation) -> erlang:system_time(second) + Probation.

text(T) when is_list(T) -> T;
text(T) -> lists:flatten(io_lib:format("~0tp", [T])).
