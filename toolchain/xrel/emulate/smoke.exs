# xrel smoke: loaded by `bin/<release> eval` on the target; prints XREL-SMOKE<TAB>... lines that
# xrel.emulate.smoke parses (apps and modules loaded, NIF libraries mapped, crypto, the system).
out = fn parts -> IO.puts(Enum.join(["XREL-SMOKE" | parts], "\t")) end
root = to_string(:code.root_dir())
for ebin <- Path.wildcard(Path.join(root, "lib/*/ebin")) do
  app = ebin |> Path.dirname() |> Path.basename()
  beams = Path.wildcard(Path.join(ebin, "*.beam"))
  failed =
    for beam <- beams, mod = beam |> Path.basename(".beam") |> String.to_atom(), reduce: [] do
      acc ->
        case :code.ensure_loaded(mod) do
          {:module, _} -> acc
          {:error, reason} -> [{mod, reason} | acc]
        end
    end
  out.(["app", app, Integer.to_string(length(beams)), Integer.to_string(length(failed))])
  for {mod, reason} <- failed, do: out.(["fail", app, inspect(mod), inspect(reason)])
end
maps = case File.read("/proc/self/maps") do
  {:ok, text} -> text
  _ -> ""
end
for line <- String.split(maps, "\n"), path = line |> String.split(" ", trim: true) |> Enum.at(5),
    is_binary(path) and String.starts_with?(path, root <> "/lib/"), uniq: true,
    do: out.(["mapped", path])
crypto =
  try do
    hash = :crypto.hash(:sha256, "xrel") |> Base.encode16(case: :lower)
    {_, _, version} = hd(:crypto.info_lib())
    ["ok", hash, to_string(version)]
  rescue
    e -> ["error", Exception.message(e), ""]
  catch
    kind, reason -> ["error", inspect({kind, reason}), ""]
  end
out.(["crypto" | crypto])
try do
  Logger.flush()
rescue
  _ -> :ok
end
out.(["system", to_string(:erlang.system_info(:system_architecture)), to_string(:erlang.system_info(:otp_release)),
      Integer.to_string(:erlang.system_info(:wordsize))])
