"""Provisioning (`simdoctor setup`): from a bare machine to a stack `check` passes, as a plan of steps, each
an exact command or a named operation of simdoctor's own (downloads go through simdoctor.download).

setup.py       the plan, its steps in order, resumable     steps.py  what a step is made of
agentbuild.py  SimLingo's Python 3.8 agent env (conda or uv)   handoff.py  root hands the stack to a user
"""
