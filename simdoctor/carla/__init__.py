"""`simdoctor carla`: start CARLA on the GPU the user names, prove it renders there, explain why it
failed when it does, and never leave a server behind. Its records of started servers are
simdoctor.system.serverstate.

command.py  the server command line, the Vulkan adapter and the ports
process.py  the process backend (CarlaUE4.sh in its own session)   docker.py  the docker backend
ready.py    waiting for the RPC `version` answer                    rendering.py  proof of GPU rendering
diagnose.py the known failure strings of a server log
lifecycle.py start / stop / status / logs                           output.py  what the user reads
"""
