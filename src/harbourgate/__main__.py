from harbourgate.cli import main

main()
