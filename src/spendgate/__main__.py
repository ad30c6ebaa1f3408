from spendgate.entrypoints.cli import main

main()
