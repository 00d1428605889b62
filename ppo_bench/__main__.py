from ppo_bench.cli import main

main()
