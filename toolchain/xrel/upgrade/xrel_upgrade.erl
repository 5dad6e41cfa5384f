%% xrel's build-side helper for hot upgrades, run by the HOST's erl (xrel/upgrade/erlang.py compiles it):
%%   appups REQ  REQ holds [{App, OldVsn, NewVsn, OldEbin, NewEbin}]: writes NewEbin/App.appup from a beam
%%               diff unless the user wrote one; prints `module App Module Kind` and `user App` lines
%%   relup REQ   REQ holds {NewRel, OldRel, OutDir, Paths}: systools:make_relup/4 into OutDir
%%   rename REQ  REQ holds {RelDir, RelFile, [{App, OldVsn, NewVsn, AppFile}]}: an app's new version
%%               written into its .app, the .rel and start.script/start.boot
%% Any failure prints `error: <reason>` and exits 1.
-module(xrel_upgrade).
-export([main/1, instructions/2]).

main([Command, Req]) ->
    try
        {ok, [Term]} = file:consult(Req),
        run(list_to_atom(Command), Term),
        halt(0)
    catch
        throw:{xrel, Message} -> fail(Message);
        Class:Reason:Stack -> fail(io_lib:format("~p:~p ~p", [Class, Reason, Stack]))
    end.

fail(Message) ->
    io:format("error: ~ts~n", [Message]),
    halt(1).

run(appups, Apps) -> lists:foreach(fun appup/1, Apps);
run(relup, {NewRel, OldRel, OutDir, Paths}) -> relup(NewRel, OldRel, OutDir, Paths);
run(rename, {RelDir, RelFile, Apps}) -> rename(RelDir, RelFile, Apps).

%% --- appups ---------------------------------------------------------------------------------------------

appup({App, OldVsn, NewVsn, OldEbin, NewEbin}) ->
    File = filename:join(NewEbin, App ++ ".appup"),
    case file:consult(File) of
        {ok, [{_Vsn, Up, Down}]} ->  % the user's own: it wins (its vsn follows the .app's, xrel may rename it)
            write_term(File, {NewVsn, Up, Down}),
            io:format("user ~ts~n", [App]);
        {error, enoent} ->
            {UpI, DownI, Kinds} = instructions(OldEbin, NewEbin),
            [io:format("module ~ts ~ts ~ts~n", [App, M, K]) || {M, K} <- Kinds],
            write_term(File, {NewVsn, [{OldVsn, UpI}], [{OldVsn, DownI}]});
        {ok, _} -> throw({xrel, io_lib:format("~ts is not one {Vsn, Up, Down} term", [File])});
        {error, E} -> throw({xrel, io_lib:format("~ts: ~ts", [File, file:format_error(E)])})
    end.

%% Up and down instructions for the modules of two ebin dirs; Kinds lists [{Module, Kind}] of the upgrade.
instructions(OldEbin, NewEbin) ->
    Old = beams(OldEbin),
    New = beams(NewEbin),
    Added = [M || M <- maps:keys(New), not maps:is_key(M, Old)],
    Deleted = [M || M <- maps:keys(Old), not maps:is_key(M, New)],
    Changed = [M || M <- maps:keys(New), maps:is_key(M, Old), md5(maps:get(M, Old)) =/= md5(maps:get(M, New))],
    Kinds = [{M, kind(maps:get(M, New))} || M <- Changed],
    Deps = fun(M) -> deps(maps:get(M, New), Changed -- [M]) end,
    Updates = [update(M, K, Deps(M)) || {M, K} <- Kinds, K =/= supervisor],
    Sups = [{update, M, supervisor} || {M, supervisor} <- Kinds],
    Up = [{add_module, M} || M <- Added] ++ Updates ++ Sups ++ [{delete_module, M} || M <- Deleted],
    Down = [{add_module, M} || M <- Deleted] ++ Updates ++ Sups ++ [{delete_module, M} || M <- Added],
    {Up, Down, [{M, added} || M <- Added] ++ Kinds ++ [{M, deleted} || M <- Deleted]}.

update(M, advanced, Deps) -> {update, M, {advanced, []}, Deps};
update(M, load, Deps) -> {load_module, M, Deps}.

beams(Ebin) ->
    maps:from_list([{list_to_atom(filename:basename(F, ".beam")), F}
                    || F <- filelib:wildcard(filename:join(Ebin, "*.beam"))]).

%% The code's identity: beam_lib's md5 covers the chunks that make the module (no debug info, docs,
%% compile info or chunk order).
md5(File) ->
    {ok, {_, Md5}} = beam_lib:md5(File),
    Md5.

kind(File) ->
    {ok, {_, [{attributes, Attrs}, {exports, Exports}]}} = beam_lib:chunks(File, [attributes, exports]),
    Behaviours = proplists:get_value(behaviour, Attrs, []) ++ proplists:get_value(behavior, Attrs, []),
    Special = [E || E <- [{code_change, 3}, {code_change, 4}, {system_code_change, 4}], lists:member(E, Exports)],
    case lists:member(supervisor, Behaviours) orelse lists:member('Elixir.Supervisor', Behaviours) of
        true -> supervisor;
        false when Special =/= [] -> advanced;
        false -> load
    end.

%% The changed modules of the same app that this one calls: loaded first (systools orders by them).
deps(File, Changed) ->
    {ok, {_, [{imports, Imports}]}} = beam_lib:chunks(File, [imports]),
    Called = lists:usort([M || {M, _F, _A} <- Imports]),
    [M || M <- Called, lists:member(M, Changed)].

%% --- relup ----------------------------------------------------------------------------------------------

relup(NewRel, OldRel, OutDir, Paths) ->
    case systools:make_relup(NewRel, [OldRel], [OldRel], [{outdir, OutDir}, {path, Paths}, silent]) of
        {ok, _Relup, Module, Warnings} ->
            [io:format("warning ~ts~n", [Module:format_warning(W)]) || W <- Warnings],
            ok;
        {error, Module, Error} -> throw({xrel, Module:format_error(Error)})
    end.

%% --- rename ---------------------------------------------------------------------------------------------

rename(RelDir, RelFile, Apps) ->
    Names = [{list_to_atom(A), Old, New} || {A, Old, New, _} <- Apps],
    [rename_app_file(AppFile, New) || {_, _, New, AppFile} <- Apps],
    {ok, [{release, Rel, Erts, Libs}]} = file:consult(RelFile),
    write_term(RelFile, {release, Rel, Erts, [rename_lib(L, Names) || L <- Libs]}),
    Script = filename:join(RelDir, "start"),
    {ok, [{script, Id, Steps}]} = file:consult(Script ++ ".script"),
    write_term(Script ++ ".script", {script, Id, rename_steps(Steps, Names)}),
    ok = systools:script2boot(Script).

rename_app_file(File, Vsn) ->
    {ok, [{application, App, Props}]} = file:consult(File),
    write_term(File, {application, App, lists:keystore(vsn, 1, Props, {vsn, Vsn})}).

rename_lib(Lib, Names) ->
    case lists:keyfind(element(1, Lib), 1, Names) of
        {_, Old, New} when element(2, Lib) =:= Old -> setelement(2, Lib, New);
        _ -> Lib
    end.

%% The boot script's paths to lib/App-Old and its embedded application specs carry the version.
rename_steps(Steps, Names) ->
    [rename_step(S, Names) || S <- Steps].

rename_step({apply, {application, load, [{application, App, Props}]}} = Step, Names) ->
    case lists:keyfind(App, 1, Names) of
        {_, _, New} -> {apply, {application, load, [{application, App, lists:keystore(vsn, 1, Props, {vsn, New})}]}};
        false -> Step
    end;
rename_step({path, Paths}, Names) -> {path, [rename_path(P, Names) || P <- Paths]};
rename_step(Step, _Names) -> Step.

rename_path(Path, Names) ->
    lists:foldl(fun({App, Old, New}, P) ->
                        Dir = "/lib/" ++ atom_to_list(App) ++ "-",
                        unicode:characters_to_list(string:replace(P, Dir ++ Old ++ "/", Dir ++ New ++ "/", all))
                end, Path, Names).

write_term(File, Term) ->
    ok = file:write_file(File, unicode:characters_to_binary(io_lib:format("%% coding: utf-8~n~tp.~n", [Term]))).
