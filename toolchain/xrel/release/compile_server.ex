# xrel's compile server (compile_server.exs starts it): compiled once per Elixir version with
# xrel_mix.ex (mix.helpers_ebin), so a build's compile VM does not compile it at every boot.

defmodule Xrel.CompileServer do
  @moduledoc false

  # requests from stdin, answers (and Mix's output) to stdout, until EOF
  def serve(token), do: serve(fn -> IO.read(:stdio, :line) end, token)

  defp serve(next_line, token) do
    case next_line.() do
      "halt\n" ->
        :halt

      line when is_binary(line) ->
        [app, tree | vars] = line |> String.trim() |> String.split(" ") |> Enum.map(&Base.decode64!/1)
        use_env(Map.new(vars, fn var -> List.to_tuple(String.split(var, "=", parts: 2)) end))
        IO.puts("#{token} #{compile(String.to_atom(app), tree)}")
        serve(next_line, token)

      _eof_or_error ->
        :ok
    end
  end

  # kept between builds: serves each build that connects to the unix socket `path`, one at a time
  # (a build's requests and Mix's output on its connection), until no build came for `idle_ms` or
  # one sent "halt" (it was started otherwise than this VM)
  # (a socket already there is another VM's, started by a build at the same time: this one halts,
  # and its build boots one of its own; a dead VM's socket is removed by the next build's knock)
  def listen(path, idle_ms, greeting, token) do
    case :gen_tcp.listen(0, [:binary, ifaddr: {:local, path}, active: false]) do
      {:ok, listener} -> accept(listener, path, idle_ms, greeting, token)
      {:error, _in_use} -> :ok
    end
  end

  # (a build that knocked while another was served, and went its own way, is gone when its turn
  # comes: its connection is closed and the next one accepted)
  defp accept(listener, path, idle_ms, greeting, token) do
    with {:ok, conn} <- :gen_tcp.accept(listener, idle_ms),
         result when result != :halt <- greet_and_serve(conn, greeting, token) do
      accept(listener, path, idle_ms, greeting, token)
    else
      _ -> File.rm(path)
    end
  end

  defp greet_and_serve(conn, greeting, token) do
    case :gen_tcp.send(conn, "#{greeting} #{System.pid()}\n") do
      :ok -> serve_connection(conn, token)
      {:error, _gone} -> :gen_tcp.close(conn)
    end
  end

  defp serve_connection(conn, token) do
    leader = Process.group_leader()
    forwarder = spawn(fn -> forward(conn) end)
    Process.group_leader(self(), forwarder)
    Process.put(:xrel_received, "")

    try do
      serve(fn -> received_line(conn) end, token)
    after
      Process.group_leader(self(), leader)
      Process.exit(forwarder, :kill)
      :gen_tcp.close(conn)
    end
  end

  defp received_line(conn) do
    case :binary.split(Process.get(:xrel_received), "\n") do
      [line, rest] ->
        Process.put(:xrel_received, rest)
        line <> "\n"

      [part] ->
        case :gen_tcp.recv(conn, 0) do
          {:ok, data} ->
            Process.put(:xrel_received, part <> data)
            received_line(conn)

          error ->
            error
        end
    end
  end

  # an IO server: what the request's processes print goes to the connection (a closed one: dropped)
  defp forward(conn) do
    receive do
      {:io_request, from, reply_as, request} ->
        send(from, {:io_reply, reply_as, put(conn, request)})
        forward(conn)
    end
  end

  defp put(conn, {:put_chars, encoding, chars}) do
    :gen_tcp.send(conn, :unicode.characters_to_binary(chars, encoding, :utf8))
    :ok
  end

  defp put(conn, {:put_chars, encoding, m, f, a}), do: put(conn, {:put_chars, encoding, apply(m, f, a)})
  defp put(conn, {:requests, requests}), do: Enum.reduce(requests, :ok, fn r, _ -> put(conn, r) end)
  defp put(_conn, _request), do: {:error, :request}

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
