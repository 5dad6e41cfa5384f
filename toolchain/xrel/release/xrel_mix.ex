# xrel's Mix-side helpers, used by wrapper.exs: JSON output, the in-memory release adjustments,
# the host-app check step and the `xrel.info` task. xrel compiles this file once per Elixir
# version into its cache (XREL_MIX_EBIN); without that, wrapper.exs compiles it on each run.

defmodule Xrel.Json do
  @moduledoc false
  def encode(nil), do: "null"
  def encode(true), do: "true"
  def encode(false), do: "false"
  def encode(value) when is_atom(value), do: encode(Atom.to_string(value))
  def encode(value) when is_number(value), do: to_string(value)

  def encode(value) when is_binary(value) do
    escaped =
      for <<c::utf8 <- value>>, into: "" do
        case c do
          ?" -> "\\\""
          ?\\ -> "\\\\"
          ?\n -> "\\n"
          c when c < 0x20 -> "\\u" <> String.pad_leading(Integer.to_string(c, 16), 4, "0")
          c -> <<c::utf8>>
        end
      end

    "\"" <> escaped <> "\""
  end

  def encode(value) when is_list(value) do
    if value != [] and Keyword.keyword?(value) do
      encode(Map.new(value))
    else
      "[" <> Enum.map_join(value, ",", &encode/1) <> "]"
    end
  end

  def encode(value) when is_map(value) do
    "{" <> Enum.map_join(value, ",", fn {k, v} -> encode(to_string(k)) <> ":" <> encode(v) end) <> "}"
  end

  def encode(value), do: encode(inspect(value))
end

defmodule Xrel.Release do
  @moduledoc false
  @elixir_apps [:elixir, :logger, :iex, :eex, :mix, :ex_unit]

  def adjust_project(config) do
    # Mix >= 1.15 prunes code paths it was not told about when it compiles: the helpers' and the
    # node agent's, which xrel prepends (older Mix ignores the key). The user's own choice wins.
    config = Keyword.put_new(config, :prune_code_paths, false)

    case System.get_env("XREL_INCLUDE_ERTS") do
      nil -> config
      erts -> Keyword.put(config, :releases, adjust_releases(config, erts))
    end
  end

  # With XREL_BEAM_MARK set, that file is written when the project's compilers before Elixir's are
  # done (its deps and its own native outputs compiled, its BEAM code about to be): xrel then boots
  # the VM its other targets compile in, beside the BEAM compile rather than its release's assembly.
  # Nothing when Elixir's compiler comes first or not at all, or Mix has no after_compiler (xrel
  # then boots that VM when the release assembles, as before).
  def mark_beam_compile(config) do
    compilers = Keyword.get(config, :compilers, Mix.compilers())

    with mark when is_binary(mark) <- System.get_env("XREL_BEAM_MARK"),
         index when is_integer(index) and index > 0 <- Enum.find_index(compilers, &(&1 == :elixir)),
         true <- Code.ensure_loaded?(Mix.Task.Compiler),
         true <- function_exported?(Mix.Task.Compiler, :after_compiler, 2) do
      Mix.Task.Compiler.after_compiler(Enum.at(compilers, index - 1), fn result ->
        File.write(mark, "")
        result
      end)
    end

    :ok
  end

  defp adjust_releases(config, erts) do
    releases = Keyword.get(config, :releases, [])

    releases =
      if releases == [] and not Mix.Project.umbrella?(config),
        do: [{Keyword.fetch!(config, :app), []}],
        else: releases

    for {name, opts} <- releases, do: {name, adjust_release(opts, erts)}
  end

  defp adjust_release(opts, erts) when is_function(opts, 0), do: fn -> adjust_release(opts.(), erts) end

  defp adjust_release(opts, erts) do
    opts =
      case Keyword.get(opts, :include_erts, true) do
        false -> opts
        _ -> Keyword.put(opts, :include_erts, erts)
      end

    opts =
      if System.get_env("XREL_TARGET_OS") == "windows" do
        # a Windows release needs the .bat scripts whatever the host prefers
        Keyword.update(opts, :include_executables_for, [:windows], &Enum.uniq([:windows | &1]))
      else
        opts
      end

    opts =
      if System.get_env("XREL_NODE_AGENT") do
        # appended: it boots after the project's applications (its .app also depends on the project's)
        Keyword.update(opts, :applications, [xrel_node: :permanent], &(&1 ++ [xrel_node: :permanent]))
      else
        opts
      end

    # mix's :tar step would write its tarball (with the build's secret COOKIE) into the release dir:
    # xrel writes its own reproducible tarball instead (by default for such a release)
    check = &check_apps/1
    Keyword.update(opts, :steps, [check, :assemble], fn steps -> [check | List.delete(steps, :tar)] end)
  end

  # Refuse OTP applications that mix would copy from the host's OTP.
  def check_apps(release) do
    host_lib = Path.join(to_string(:code.root_dir()), "lib")

    from_host =
      for {app, props} <- release.applications,
          app not in @elixir_apps,
          not Keyword.get(props, :otp_app?, false),
          path = to_string(Keyword.fetch!(props, :path)),
          String.starts_with?(path, host_lib <> "/"),
          do: {app, path}

    if release.erts_source != nil and from_host != [] do
      names = Enum.map_join(from_host, ", ", fn {app, _} -> to_string(app) end)

      Mix.raise(
        "xrel: OTP application(s) #{names} are missing from the target runtime " <>
          "(#{Path.dirname(to_string(release.erts_source))}/lib); mix would copy the host's"
      )
    end

    File.write!(
      System.get_env("XREL_RELEASE_INFO", "/dev/null"),
      Xrel.Json.encode(%{
        name: release.name,
        version: release.version,
        path: release.path,
        erts_source: release.erts_source && to_string(release.erts_source),
        erts_version: to_string(release.erts_version),
        include_executables_for: Keyword.get(release.options, :include_executables_for, [:unix, :windows]),
        applications:
          for {app, props} <- release.applications, into: %{} do
            {app, %{vsn: to_string(props[:vsn]), path: to_string(props[:path]), otp_app: props[:otp_app?]}}
          end
      })
    )

    release
  end
end

defmodule Mix.Tasks.Xrel.Info do
  @moduledoc false
  use Mix.Task

  @impl true
  def run(_args) do
    config = Mix.Project.config()
    deps = Mix.Project.deps_paths()
    scms = Mix.Project.deps_scms()

    info = %{
      app: config[:app],
      version: config[:version],
      umbrella: Mix.Project.umbrella?(config),
      apps_path: config[:apps_path],
      build_path: Mix.Project.build_path(),
      deps_path: Mix.Project.deps_path(),
      releases: Keyword.keys(Keyword.get(config, :releases, [])),
      tar_releases: tar_releases(Keyword.get(config, :releases, [])),
      default_release: config[:default_release],
      compilers: Enum.map(config[:compilers] || Mix.compilers(), &to_string/1),
      elixir: System.version(),
      otp: System.otp_release(),
      deps:
        for {app, path} <- deps do
          %{app: app, path: path, scm: inspect(scms[app]), exists: File.dir?(path)}
        end,
      deps_tree: deps_tree()
    }

    File.write!(System.fetch_env!("XREL_INFO_OUT"), Xrel.Json.encode(info))
  end

  # The releases whose steps include mix's :tar (their options may be a function, as mix allows).
  defp tar_releases(releases) do
    for {name, opts} <- releases,
        opts = if(is_function(opts, 0), do: opts.(), else: opts),
        :tar in Keyword.get(opts, :steps, []),
        do: name
  end

  # The deps in mix's compile order (each after the deps it needs), with their children: xrel
  # compiles a dep that needs its own environment alone, after its children. Mix.Dep is internal
  # API, like Mix.ProjectStack.
  defp deps_tree do
    if Code.ensure_loaded?(Mix.Dep) and function_exported?(Mix.Dep, :cached, 0) do
      for dep <- Mix.Dep.cached(), do: %{app: dep.app, children: Enum.map(dep.deps, & &1.app)}
    else
      []
    end
  end
end
