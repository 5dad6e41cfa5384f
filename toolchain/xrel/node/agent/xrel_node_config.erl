%% The agent's settings: baked into the release from xrel.toml (application env), overridden on the
%% node by XREL_NODE_* environment variables; plus what the release knows about itself.
-module(xrel_node_config).
-export([load/0, latest_url/1, version_url/3]).

load() ->
    #{root => env("XREL_NODE_ROOT", undefined),
      feed => env("XREL_NODE_FEED", app_env(feed, undefined)),
      interval => int(env("XREL_NODE_INTERVAL", app_env(interval, 300))),
      probation => int(env("XREL_NODE_PROBATION", app_env(probation, 120))),
      cacertfile => env("XREL_NODE_CACERTFILE", app_env(cacertfile, undefined)),
      pin => env("XREL_NODE_PIN", undefined),
      tag_prefix => app_env(tag_prefix, "v"),
      health_check => app_env(health_check, undefined),
      public_key => app_env(public_key, undefined),
      app => app_env(app, undefined),
      target => own_target(),
      running => running_version()}.

%% the manifest naming the newest version, and a file of one version's immutable location
latest_url(#{feed := "github:" ++ Repo}) ->
    "https://github.com/" ++ Repo ++ "/releases/latest/download/xrel-manifest.json";
latest_url(#{feed := Base}) -> base(Base) ++ "/latest/xrel-manifest.json".

version_url(#{feed := "github:" ++ Repo, tag_prefix := Prefix}, Vsn, File) ->
    "https://github.com/" ++ Repo ++ "/releases/download/" ++ Prefix ++ Vsn ++ "/" ++ File;
version_url(#{feed := Base}, Vsn, File) -> base(Base) ++ "/" ++ Vsn ++ "/" ++ File.

base(Url) -> string:trim(Url, trailing, "/").

env(Name, Default) ->
    case os:getenv(Name) of
        false -> Default;
        "" -> Default;
        Value -> Value
    end.

app_env(Key, Default) -> application:get_env(xrel_node, Key, Default).

int(V) when is_integer(V) -> V;
int(V) -> list_to_integer(string:trim(V)).

%% the canonical target id xrel wrote into releases/xrel.json
own_target() ->
    File = filename:join([code:root_dir(), "releases", "xrel.json"]),
    case file:read_file(File) of
        {ok, Text} ->
            case xrel_node_json:decode(Text) of
                {ok, #{<<"target">> := Target}} -> binary_to_list(Target);
                _ -> undefined
            end;
        {error, _} -> undefined
    end.

%% the boot script's version, or the one a hot upgrade installed in this VM since
running_version() ->
    {_Name, Vsn} = xrel_node_hot:running_release(),
    Vsn.
