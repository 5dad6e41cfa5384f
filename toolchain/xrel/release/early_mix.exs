# xrel's early mix VM (see early_mix.py, kept_mix.py). It waits for one line: the mix script and its
# arguments, each base64, separated by spaces; it then runs that script as `elixir <script> <args>`
# does. Booted by a build (no arguments) it reads the line on stdin; end of input: it stops. Kept
# between builds (arguments: a unix socket, idle seconds, a greeting) it listens on the socket, greets
# the build that connects (the greeting and its os pid), and takes the line from it; an empty line:
# it waits again. No connection for the idle seconds, or the build gone: it stops.
defmodule XrelEarlyMix do
  def run(line, how) do
    [script | args] = line |> String.split() |> Enum.map(&Base.decode64!/1)
    IO.puts("(xrel: mix runs in the VM #{how}, os pid #{System.pid()})")
    System.argv(args)
    Code.require_file(script)
  end

  def serve(socket, idle_ms, greeting) do
    options = [:binary, ifaddr: {:local, socket}, active: false, packet: :line]

    with {:ok, listen} <- :gen_tcp.listen(0, options),
         accepted = :gen_tcp.accept(listen, idle_ms),
         :ok <- :gen_tcp.close(listen),
         :ok <- File.rm(socket),
         {:ok, conn} <- accepted,
         :ok <- :gen_tcp.send(conn, "#{greeting} #{System.pid()}\n") do
      case :gen_tcp.recv(conn, 0) do
        {:ok, "\n"} ->
          :gen_tcp.close(conn)
          serve(socket, idle_ms, greeting)

        {:ok, line} ->
          run(line, "kept from the last build")

        _closed ->
          System.halt(0)
      end
    else
      _ -> System.halt(0)
    end
  end
end

case System.argv() do
  [socket, idle, greeting] ->
    XrelEarlyMix.serve(socket, String.to_integer(idle) * 1000, greeting)

  [] ->
    case IO.read(:stdio, :line) do
      line when is_binary(line) -> XrelEarlyMix.run(line, "it booted early")
      _eof -> System.halt(0)
    end
end
