%% Verifies minisign signatures (what `xrel dist` and `minisign -S` write) with nothing but OTP's crypto.
%%
%% verify(Data, SigText, PubText) -> {ok, TrustedComment} | {error, Reason}
%%   Data: the signed file's bytes; SigText: the .minisig's text; PubText: the .pub file's text (or its base64 line).
%%   Checks the key id, the signature of the file (prehashed `ED`: Ed25519 of BLAKE2b-512(Data); legacy `Ed`:
%%   of Data itself) and the global signature over the signature and the trusted comment.
-module(xrel_minisign).
-export([verify/3, verify_file/3]).

-define(UNTRUSTED, "untrusted comment: ").
-define(TRUSTED, "trusted comment: ").

verify_file(File, SigFile, PubFile) ->
    case {file:read_file(File), file:read_file(SigFile), file:read_file(PubFile)} of
        {{ok, Data}, {ok, Sig}, {ok, Pub}} -> verify(Data, Sig, Pub);
        {{error, E}, _, _} -> {error, {read, File, E}};
        {_, {error, E}, _} -> {error, {read, SigFile, E}};
        {_, _, {error, E}} -> {error, {read, PubFile, E}}
    end.

verify(Data, SigText, PubText) ->
    try
        {KeyId, Pub} = public_key(PubText),
        {Alg, SigKeyId, Sig, Trusted, GlobalSig} = signature(SigText),
        check(SigKeyId =:= KeyId, key_id_mismatch),
        Signed = case Alg of
                     <<"ED">> -> crypto:hash(blake2b, Data);
                     <<"Ed">> -> Data
                 end,
        check(crypto:verify(eddsa, none, Signed, Sig, [Pub, ed25519]), bad_signature),
        check(crypto:verify(eddsa, none, <<Sig/binary, Trusted/binary>>, GlobalSig, [Pub, ed25519]),
              bad_trusted_comment),
        {ok, Trusted}
    catch
        throw:{xrel_minisign, Reason} -> {error, Reason}
    end.

check(true, _) -> ok;
check(_, Reason) -> throw({xrel_minisign, Reason}).

lines(Text) ->
    [trim_cr(L) || L <- binary:split(iolist_to_binary(Text), <<"\n">>, [global])].

trim_cr(L) ->
    case byte_size(L) of
        0 -> L;
        N -> case binary:last(L) of $\r -> binary:part(L, 0, N - 1); _ -> L end
    end.

b64(Line, Size, Reason) ->
    try base64:decode(Line) of
        Bin when byte_size(Bin) =:= Size -> Bin;
        _ -> throw({xrel_minisign, Reason})
    catch
        error:_ -> throw({xrel_minisign, Reason})
    end.

public_key(Text) ->
    Line = case [L || L <- lines(Text), L =/= <<>>] of
               [<<?UNTRUSTED, _/binary>>, B64] -> B64;
               [B64] -> B64;
               _ -> throw({xrel_minisign, malformed_public_key})
           end,
    case b64(Line, 42, malformed_public_key) of
        <<"Ed", KeyId:8/binary, Pub:32/binary>> -> {KeyId, Pub};
        _ -> throw({xrel_minisign, malformed_public_key})
    end.

signature(Text) ->
    case lines(Text) of
        [<<?UNTRUSTED, _/binary>>, SigLine, <<?TRUSTED, Trusted/binary>>, GlobalLine | Rest] ->
            check(lists:all(fun(L) -> string:trim(L) =:= <<>> end, Rest), malformed_signature),
            case b64(SigLine, 74, malformed_signature) of
                <<Alg:2/binary, KeyId:8/binary, Sig:64/binary>> when Alg =:= <<"ED">>; Alg =:= <<"Ed">> ->
                    {Alg, KeyId, Sig, Trusted, b64(GlobalLine, 64, malformed_signature)};
                _ -> throw({xrel_minisign, unknown_algorithm})
            end;
        _ -> throw({xrel_minisign, malformed_signature})
    end.
