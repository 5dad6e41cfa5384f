%% The xrel_node application: one supervised agent process.
-module(xrel_node_app).
-behaviour(application).
-behaviour(supervisor).
-export([start/2, stop/1, init/1]).

start(_Type, _Args) -> supervisor:start_link({local, xrel_node_sup}, ?MODULE, []).

stop(_State) -> ok.

init([]) ->
    {ok, {#{strategy => one_for_one, intensity => 5, period => 60},
          [#{id => xrel_node, start => {xrel_node, start_link, []}}]}}.
