%% A strict JSON decoder for the manifest (OTP 25 has no json module): objects become maps with
%% binary keys, arrays lists, strings UTF-8 binaries, null/true/false atoms.
-module(xrel_node_json).
-export([decode/1]).

-define(WS(C), (C =:= $\s orelse C =:= $\t orelse C =:= $\n orelse C =:= $\r)).

decode(Bin) when is_binary(Bin) ->
    try value(skip(Bin)) of
        {Value, Rest} ->
            case skip(Rest) of
                <<>> -> {ok, Value};
                _ -> {error, trailing_data}
            end
    catch
        throw:{json, Why} -> {error, Why};
        error:_ -> {error, malformed_json}
    end.

skip(<<C, R/binary>>) when ?WS(C) -> skip(R);
skip(B) -> B.

value(<<${, R/binary>>) -> object(skip(R), #{});
value(<<$[, R/binary>>) -> array(skip(R), []);
value(<<$", R/binary>>) -> string(R, []);
value(<<"true", R/binary>>) -> {true, R};
value(<<"false", R/binary>>) -> {false, R};
value(<<"null", R/binary>>) -> {null, R};
value(B) -> number(B).

object(<<$}, R/binary>>, Acc) when map_size(Acc) =:= 0 -> {Acc, R};
object(<<$", R/binary>>, Acc) ->
    {Key, R1} = string(R, []),
    R2 = case skip(R1) of
             <<$:, After/binary>> -> skip(After);
             _ -> throw({json, malformed_object})
         end,
    {Value, R3} = value(R2),
    case skip(R3) of
        <<$,, R4/binary>> -> object(skip(R4), Acc#{Key => Value});
        <<$}, R4/binary>> -> {Acc#{Key => Value}, R4};
        _ -> throw({json, malformed_object})
    end;
object(_, _) -> throw({json, malformed_object}).

array(<<$], R/binary>>, []) -> {[], R};
array(B, Acc) ->
    {Value, R1} = value(B),
    case skip(R1) of
        <<$,, R2/binary>> -> array(skip(R2), [Value | Acc]);
        <<$], R2/binary>> -> {lists:reverse([Value | Acc]), R2};
        _ -> throw({json, malformed_array})
    end.

string(<<$", R/binary>>, Acc) ->
    case unicode:characters_to_binary(lists:reverse(Acc)) of
        Bin when is_binary(Bin) -> {Bin, R};
        _ -> throw({json, bad_unicode})
    end;
string(<<$\\, $u, H:4/binary, R/binary>>, Acc) -> unicode_escape(hex4(H), R, Acc);
string(<<$\\, C, R/binary>>, Acc) -> string(R, [escape(C) | Acc]);
string(<<C/utf8, _/binary>>, _) when C < 16#20 -> throw({json, control_character_in_string});
string(<<C/utf8, R/binary>>, Acc) -> string(R, [C | Acc]);
string(_, _) -> throw({json, malformed_string}).

%% a UTF-16 surrogate pair is one character; a lone surrogate is no character at all
unicode_escape(Hi, <<$\\, $u, L:4/binary, R/binary>>, Acc) when Hi >= 16#D800, Hi =< 16#DBFF ->
    case hex4(L) of
        Lo when Lo >= 16#DC00, Lo =< 16#DFFF -> string(R, [16#10000 + ((Hi - 16#D800) bsl 10) + (Lo - 16#DC00) | Acc]);
        _ -> throw({json, lone_surrogate})
    end;
unicode_escape(C, _, _) when C >= 16#D800, C =< 16#DFFF -> throw({json, lone_surrogate});
unicode_escape(C, R, Acc) -> string(R, [C | Acc]).

%% exactly four hex digits (binary_to_integer/2 would take a sign)
hex4(H) ->
    case [C || <<C>> <= H, (C >= $0 andalso C =< $9) orelse (C >= $a andalso C =< $f) orelse (C >= $A andalso C =< $F)] of
        [_, _, _, _] -> binary_to_integer(H, 16);
        _ -> throw({json, bad_escape})
    end.

escape($") -> $";
escape($\\) -> $\\;
escape($/) -> $/;
escape($b) -> $\b;
escape($f) -> $\f;
escape($n) -> $\n;
escape($r) -> $\r;
escape($t) -> $\t;
escape(_) -> throw({json, bad_escape}).

number(B) ->
    {Text, Rest} = number_text(B, <<>>),
    %% JSON's grammar: no leading zeros, no plus sign, digits on both sides of the point
    case re:run(Text, "^-?(0|[1-9][0-9]*)(\\.[0-9]+)?([eE][-+]?[0-9]+)?$", [{capture, none}]) of
        match -> ok;
        nomatch -> throw({json, bad_number})
    end,
    Float = binary:match(Text, [<<".">>, <<"e">>, <<"E">>]) =/= nomatch,
    {if Float -> to_float(Text); true -> binary_to_integer(Text) end, Rest}.

number_text(<<C, R/binary>>, Acc) when (C >= $0 andalso C =< $9) orelse C =:= $- orelse C =:= $+
                                        orelse C =:= $. orelse C =:= $e orelse C =:= $E ->
    number_text(R, <<Acc/binary, C>>);
number_text(_, <<>>) -> throw({json, unexpected_character});
number_text(R, Acc) -> {Acc, R}.

%% binary_to_float wants a fraction: "1e5" becomes "1.0e5"
to_float(Text) ->
    case binary:match(Text, <<".">>) of
        nomatch ->
            [M, E] = binary:split(Text, [<<"e">>, <<"E">>]),
            binary_to_float(<<M/binary, ".0e", E/binary>>);
        _ -> binary_to_float(Text)
    end.
