# Each library's own target computation, for TARGET_* values given per line:
# "<name>;<rustler_precompiled's VAR=value ...>;<cc_precompiler's VAR=value ...>"
Mix.start()
fixtures = System.fetch_env!("FIXTURES")

for f <- ~w(rustler_precompiled/lib/rustler_precompiled/config.ex rustler_precompiled/lib/rustler_precompiled.ex
            elixir_make/lib/elixir_make/precompiler.ex cc_precompiler/lib/cc_precompiler.ex),
    do: Code.require_file(Path.join(fixtures, f))

with_env = fn assigns, fun ->
  Enum.each(~w(TARGET_ARCH TARGET_VENDOR TARGET_OS TARGET_ABI), &System.delete_env/1)
  for a <- String.split(assigns, " ", trim: true), [k, v] = String.split(a, "=", parts: 2), do: System.put_env(k, v)
  fun.()
end

for line <- String.split(System.fetch_env!("CASES"), "\n", trim: true) do
  [name, rp_env, cc_env] = String.split(line, ";")

  # the triple it asks for (an error names it too), and whether it is in its default target list
  rp =
    case with_env.(rp_env, &RustlerPrecompiled.target/0) do
      {:ok, "nif-" <> rest} -> (rest |> String.split("-", parts: 2) |> List.last()) <> "\tdefault"
      {:error, e} -> (Regex.run(~r/target: "([^"]*)"/, e) |> List.last()) <> "\tnot-default"
    end

  {:ok, cc} = with_env.(cc_env, &CCPrecompiler.current_target/0)
  fetchable = if cc in CCPrecompiler.all_supported_targets(:fetch), do: "default", else: "not-default"
  IO.puts(Enum.join([name, rp, cc, fetchable], "\t"))
end
