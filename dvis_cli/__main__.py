from dvis_cli.cli.app import main

main()
