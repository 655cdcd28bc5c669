"""python -m ketascreen.cli"""

from ketascreen.cli.app import main

main()
