"""simdoctor: take a bare GPU server to a running closed-loop CARLA evaluation of SimLingo."""

__version__ = "0.1.0"
