# xrel's early mix VM (see early_mix.py): booted while xrel still plans the build, it waits for one
# line on stdin: the mix script and its arguments, each base64, separated by spaces. It then runs
# that script as `elixir <script> <args>` does. End of input instead: xrel did not need it, it stops.
case IO.read(:stdio, :line) do
  line when is_binary(line) ->
    [script | args] = line |> String.split() |> Enum.map(&Base.decode64!/1)
    IO.puts("(xrel: mix runs in the VM it booted early, os pid #{System.pid()})")
    System.argv(args)
    Code.require_file(script)

  _eof ->
    System.halt(0)
end
