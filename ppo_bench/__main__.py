from ppo_bench.rl.cli import main

main()
