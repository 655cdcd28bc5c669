"""python -m ketascreen"""

from ketascreen.cli.app import main

main()
