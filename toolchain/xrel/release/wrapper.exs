# xrel's MIX_EXS: loads the user's mix.exs unchanged, then adjusts the loaded project config
# in memory (never on disk) for one target:
#   * every release gets `include_erts: <target erts dir>` (unless the user chose false), so mix
#     copies the target's ERTS and takes OTP applications from the target root;
#   * with XREL_NODE_AGENT set, every release also gets the xrel_node application;
#   * a release step before :assemble refuses any OTP application that mix would take from the
#     HOST's OTP because the target root lacks it (mix does that silently);
#   * with XREL_BEAM_MARK set, that file is written when the project's BEAM compile starts.
# It also defines the `xrel.info` task, which prints the project's shape as JSON.
#
# Mix.ProjectStack is internal API; it is pinned by a test per supported Elixir version.

case System.get_env("XREL_MIX_EBIN") do
  nil -> Code.require_file("xrel_mix.ex", __DIR__)
  ebin -> Code.prepend_path(ebin)
end

# the node agent ([node] in xrel.toml), compiled by xrel: on the code path, so a release can take it
case System.get_env("XREL_NODE_AGENT") do
  nil -> :ok
  ebin -> Code.prepend_path(ebin)
end

user_mix_exs = System.fetch_env!("XREL_USER_MIX_EXS")
Code.require_file(user_mix_exs)

case Mix.ProjectStack.pop() do
  %{name: name, config: config, file: file} ->
    :ok = Mix.ProjectStack.push(name, Xrel.Release.adjust_project(config), file)
    :ok = Xrel.Release.mark_beam_compile(config)

  other ->
    raise "xrel: unexpected Mix.ProjectStack shape #{inspect(other)}; this Elixir version is not supported"
end
