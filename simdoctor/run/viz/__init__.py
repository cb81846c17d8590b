"""`simdoctor run --viz`: SimLingo's own debug view per route. The timing wrapper (scripts/timed_agent.py)
switches the agent's drawing on and logs each frame; `font` makes the `arial.ttf` it loads findable; `video`
turns a route's frames into an H.264 MP4 at real-time speed with a poster and a commentary timeline."""
