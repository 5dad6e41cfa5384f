from xrel.launch import main

main()
