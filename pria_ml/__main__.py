from pria_ml.cli import main

main()
