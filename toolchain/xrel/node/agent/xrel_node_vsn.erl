%% Release versions (SemVer: MAJOR.MINOR.PATCH[-PRE][+BUILD]) compared the way mix compares them.
-module(xrel_node_vsn).
-export([compare/2, valid/1]).

%% valid(V) -> boolean(): a SemVer version (what mix accepts), so never a path, a URL part or empty
valid(V) when is_list(V); is_binary(V) ->
    Ident = "[0-9A-Za-z-]+",
    Dotted = Ident ++ "(\\." ++ Ident ++ ")*",
    Re = "^(0|[1-9][0-9]*)\\.(0|[1-9][0-9]*)\\.(0|[1-9][0-9]*)(-" ++ Dotted ++ ")?(\\+" ++ Dotted ++ ")?$",
    try re:run(V, Re, [{capture, none}, dollar_endonly]) =:= match
    catch error:_ -> false
    end;
valid(_) -> false.

%% compare(A, B) -> lt | eq | gt
compare(A, B) ->
    case {parse(A), parse(B)} of
        {X, X} -> eq;
        {X, Y} when X < Y -> lt;
        _ -> gt
    end.

%% {[Major, Minor, Patch], PreKey}: a version without a pre-release sorts after any with one
parse(V) ->
    [Main | _Build] = string:split(to_list(V), "+"),
    {Core, Pre} = case string:split(Main, "-") of
                      [C] -> {C, {1, []}};
                      [C, P] -> {C, {0, [ident(I) || I <- string:split(P, ".", all)]}}
                  end,
    {[list_to_integer(N) || N <- string:split(Core, ".", all)], Pre}.

%% numeric identifiers sort before alphanumeric ones
ident(I) ->
    case string:to_integer(I) of
        {N, ""} -> {0, N};
        _ -> {1, I}
    end.

to_list(V) when is_binary(V) -> binary_to_list(V);
to_list(V) -> V.
