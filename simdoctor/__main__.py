"""`python -m simdoctor`: the same CLI as the `simdoctor` command."""

from simdoctor.entry import main

main()
