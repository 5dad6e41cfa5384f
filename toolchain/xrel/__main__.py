from xrel.cli.app import main

main(prog_name="xrel")
