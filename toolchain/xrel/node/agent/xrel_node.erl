%% The agent: at boot, finishes the probation of a new version (healthy, or failed so that
%% bin/xrel-node rolls back); then polls the feed on an interval with jitter, on demand
%% (check_now/0 over rpc) or when ROOT/state/check-now appears, and switches to a verified newer
%% version by unpacking it beside the running one, flipping ROOT/current and stopping the VM so that
%% the supervisor (systemd or `bin/xrel-node run`) starts the new one.
-module(xrel_node).
-behaviour(gen_server).
-export([start_link/0, check_now/0, pin/1, status/0]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

-define(TRIGGER_EVERY, 2000).

start_link() -> gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

%% check the feed now: up_to_date | {upgraded, Vsn} (hot) | {switching, Vsn} (cold) | {error, Reason} | {idle, Why}
check_now() -> gen_server:call(?MODULE, check_now, infinity).

%% pin(Vsn | none): run Vsn (even an older one: in place when this root was hot-upgraded from it),
%% or follow the feed again; then check now
pin(none) -> gen_server:call(?MODULE, {pin, undefined}, infinity);
pin(Vsn) -> gen_server:call(?MODULE, {pin, unicode:characters_to_list(Vsn)}, infinity).

status() -> gen_server:call(?MODULE, status).

init([]) ->
    Config = xrel_node_config:load(),
    case [Why || {Key, Why} <- [{root, "XREL_NODE_ROOT (start it with bin/xrel-node)"}, {feed, "a feed"},
                                {public_key, "a public key"}, {target, "releases/xrel.json"}],
                 maps:get(Key, Config) =:= undefined] of
        [] ->
            self() ! boot,
            {ok, Config#{idle => false}};
        Missing ->
            logger:notice("xrel-node: idle, no ~s", [lists:join(", ", Missing)]),
            {ok, Config#{idle => {no, Missing}}}
    end.

handle_call(check_now, _From, C = #{idle := false}) ->
    {Result, C1} = run_check(C),
    {reply, Result, C1};
handle_call({pin, Vsn}, From, C = #{idle := false}) -> handle_call(check_now, From, C#{pin => Vsn});
handle_call(_Check, _From, C = #{idle := Why}) when Why =/= false -> {reply, {idle, Why}, C};
handle_call(status, _From, C = #{root := Root}) when is_list(Root) -> {reply, {C, xrel_node_state:read(Root)}, C};
handle_call(status, _From, C) -> {reply, {C, #{}}, C}.

handle_cast(_Msg, C) -> {noreply, C}.

handle_info(boot, C = #{root := Root}) ->
    case xrel_node_hot:ensure_releases_at_boot() of
        ok -> ok;
        {error, Why} -> xrel_node_state:log(Root, no_releases_file, [{reason, io_lib:format("~0tp", [Why])}])
    end,
    probation(C),
    erlang:send_after(?TRIGGER_EVERY, self(), trigger),
    schedule_poll(C),
    {noreply, C};
handle_info(poll, C) ->
    {_, C1} = run_check(C),
    schedule_poll(C1),
    {noreply, C1};
handle_info(trigger, C = #{root := Root}) ->
    Trigger = xrel_node_state:path(Root, trigger),
    C1 = case filelib:is_file(Trigger) of
             true -> _ = file:delete(Trigger), element(2, run_check(C));
             false -> C
         end,
    erlang:send_after(?TRIGGER_EVERY, self(), trigger),
    {noreply, C1};
handle_info({running, Vsn}, C) -> {noreply, C#{running => Vsn}};  % a hot upgrade went back
handle_info(_Msg, C) -> {noreply, C}.

schedule_poll(#{interval := Seconds}) ->
    Ms = Seconds * 1000,
    Jitter = rand:uniform(Ms div 5 + 1) - Ms div 10 - 1,  % within +-10%
    erlang:send_after(max(1000, Ms + Jitter), self(), poll).

on_probation(#{root := Root, running := Running}) ->
    State = xrel_node_state:read(Root),
    maps:get(<<"phase">>, State, <<>>) =:= <<"probation">>
        andalso maps:get(<<"current">>, State, <<>>) =:= list_to_binary(Running).

run_check(C = #{root := Root}) ->
    case on_probation(C) of
        true -> {up_to_date, C};
        false ->
            %% a version bin/xrel-node rolled back from is not tried again until a newer one is out
            Rejected = binary_to_list(maps:get(<<"rejected">>, xrel_node_state:read(Root), <<>>)),
            case xrel_node_feed:check(C#{skip => Rejected}) of
                up_to_date -> {up_to_date, C};
                {update, #{version := Vsn, entry := Entry}} -> xrel_node_apply:update(C, Vsn, Entry);
                {error, Reason} ->
                    xrel_node_state:log(Root, refused, [{reason, Reason}]),
                    {{error, Reason}, C}
            end
    end.

%% a version on probation reports healthy once its health check passes, or fails at the deadline
probation(C = #{root := Root}) ->
    xrel_node_apply:settle(C),
    case on_probation(C) of
        false -> ok;
        true ->
            Until = binary_to_integer(maps:get(<<"probation_until">>, xrel_node_state:read(Root), <<"0">>)),
            spawn_link(fun() -> xrel_node_apply:await_health(C, Until, cold) end)
    end.
