# xrel's compile server: one VM that runs `mix compile` in the build tree of each extra target in
# turn, with that target's whole environment (its CC, ERTS_INCLUDE_DIR, ...), instead of a VM and
# a Mix start per target. It has no project of its own: Mix refuses to enter a second project of
# the same name while one is on its stack.
#
# Requests on stdin, one per line: base64 tokens separated by spaces: the app name, the tree, then
# every NAME=VALUE of the environment. Mix's output goes to stdout, then one line
# "<XREL_SERVER_TOKEN> <status>" (0: compiled). EOF ends the VM. Kept between builds
# (XREL_SERVER_SOCKET; compile_server.py), the same on each connection to that unix socket, which
# first greets the build with XREL_SERVER_GREETING and the VM's pid; EOF ends the build's turn.

Code.compiler_options(ignore_module_conflict: true)
Mix.start()
Mix.env(String.to_atom(System.get_env("MIX_ENV", "prod")))

case System.get_env("MIX_TARGET") do
  nil -> :ok
  target -> Mix.target(String.to_atom(target))
end

case System.get_env("XREL_MIX_EBIN") do
  nil -> Code.require_file("compile_server.ex", __DIR__)
  ebin -> Code.prepend_path(ebin)
end

# The VM boots while the first target's BEAM code compiles, and waits: meanwhile it loads Mix's
# code and the compiler's (a one-line module compiled), which every request needs (its project's
# mix.exs is compiled), rather than during the first request. Measured, first request: 0.41-0.44 s
# with neither; 0.28-0.32 s with :mix's modules (3 MiB; every module of :mix, :compiler and :elixir:
# 11 MiB, no faster). The module below comes precompiled (mix.helpers_ebin): 12 boots, medians, with
# it compiled here instead: CPU 0.78 -> 0.74 s at boot, 1.31 -> 1.23 s in all, both requests 0.45 ->
# 0.44 s. In a process of its own, so a request that comes at once is not kept waiting.
spawn(fn ->
  for module <- Application.spec(:mix, :modules) || [], do: Code.ensure_loaded(module)
  Code.compile_string("defmodule Xrel.CompileServer.Warm, do: def(ok, do: :ok)")
end)

token = System.fetch_env!("XREL_SERVER_TOKEN")

case System.get_env("XREL_SERVER_SOCKET") do
  nil ->
    Xrel.CompileServer.serve(token)

  path ->
    idle_ms = String.to_integer(System.fetch_env!("XREL_SERVER_IDLE")) * 1000
    Xrel.CompileServer.listen(path, idle_ms, System.fetch_env!("XREL_SERVER_GREETING"), token)
end
