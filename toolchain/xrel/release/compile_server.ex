# xrel's compile server (compile_server.exs starts it): compiled once per Elixir version with
# xrel_mix.ex (mix.helpers_ebin), so a build's compile VM does not compile it at every boot.

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
