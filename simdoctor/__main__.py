from simdoctor.cli import main

main()
