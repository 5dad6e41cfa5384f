# xrel's compile server: one VM that runs `mix compile` in the build tree of each extra target in
# turn, with that target's whole environment (its CC, ERTS_INCLUDE_DIR, ...), instead of a VM and
# a Mix start per target. It has no project of its own: Mix refuses to enter a second project of
# the same name while one is on its stack.
#
# Requests on stdin, one per line: base64 tokens separated by spaces: the app name, the tree, then
# every NAME=VALUE of the environment. Mix's output goes to stdout, then one line
# "<XREL_SERVER_TOKEN> <status>" (0: compiled). EOF ends the VM.

Code.compiler_options(ignore_module_conflict: true)
Mix.start()
Mix.env(String.to_atom(System.get_env("MIX_ENV", "prod")))

case System.get_env("MIX_TARGET") do
  nil -> :ok
  target -> Mix.target(String.to_atom(target))
end

defmodule Xrel.CompileServer do
  @moduledoc false

  def serve(token) do
    case IO.read(:stdio, :line) do
      :eof ->
        :ok

      line ->
        [app, tree | vars] = line |> String.trim() |> String.split(" ") |> Enum.map(&Base.decode64!/1)
        use_env(Map.new(vars, fn var -> List.to_tuple(String.split(var, "=", parts: 2)) end))
        IO.puts("#{token} #{compile(String.to_atom(app), tree)}")
        serve(token)
    end
  end

  defp use_env(env) do
    for {name, _} <- System.get_env(), not Map.has_key?(env, name), do: System.delete_env(name)
    System.put_env(env)
  end

  defp compile(app, tree) do
    # every task may run again; what Mix caches of a project (its deps) is per in_project: each
    # tree's deps compile in that tree (tested with Elixir 1.14 and 1.18)
    Mix.Task.clear()

    Mix.Project.in_project(app, tree, fn _ ->
      Mix.Task.run("loadconfig")

      case Mix.Task.run("compile", []) do
        {:error, _} -> 1
        _ -> 0
      end
    end)
  rescue
    e ->
      IO.puts(Exception.format(:error, e, __STACKTRACE__))
      1
  catch
    kind, reason ->
      IO.puts(Exception.format(kind, reason, __STACKTRACE__))
      1
  end
end

# The VM boots while the first target's BEAM code compiles, and waits: meanwhile it loads Mix's
# code, which every request needs (the compiler's and Elixir's are loaded by then: this file's
# compile loaded them), not during the first (measured, first request: 0.41-0.44 s without; 0.27-0.34 s
# with every module of :mix, :compiler and :elixir loaded, 11 MiB more; 0.28-0.32 s with :mix's alone,
# 3 MiB more). In a process of its own, so a request that comes at once is not kept waiting.
spawn(fn ->
  for module <- Application.spec(:mix, :modules) || [], do: Code.ensure_loaded(module)
end)

Xrel.CompileServer.serve(System.fetch_env!("XREL_SERVER_TOKEN"))
