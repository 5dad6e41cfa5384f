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

string(<<$", R/binary>>, Acc) -> {unicode:characters_to_binary(lists:reverse(Acc)), R};
string(<<$\\, $u, H:4/binary, R/binary>>, Acc) -> unicode_escape(binary_to_integer(H, 16), R, Acc);
string(<<$\\, C, R/binary>>, Acc) -> string(R, [escape(C) | Acc]);
string(<<C/utf8, _/binary>>, _) when C < 16#20 -> throw({json, control_character_in_string});
string(<<C/utf8, R/binary>>, Acc) -> string(R, [C | Acc]);
string(_, _) -> throw({json, malformed_string}).

unicode_escape(Hi, <<$\\, $u, L:4/binary, R/binary>>, Acc) when Hi >= 16#D800, Hi =< 16#DBFF ->
    Lo = binary_to_integer(L, 16),
    string(R, [16#10000 + ((Hi - 16#D800) bsl 10) + (Lo - 16#DC00) | Acc]);
unicode_escape(C, R, Acc) -> string(R, [C | Acc]).

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
