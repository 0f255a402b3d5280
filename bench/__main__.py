"""`python -m bench`: every benchmark, one table, bench/results/latest.json."""
from bench.run_all import main

main()
