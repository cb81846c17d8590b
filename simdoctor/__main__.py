"""`python -m simdoctor`: the same CLI as the `simdoctor` command."""

from simdoctor.cli import main

main()
