from gai_meta.cli import main

main()
