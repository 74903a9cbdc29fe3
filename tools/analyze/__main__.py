from tools.analyze.run_analysis import main

main()
