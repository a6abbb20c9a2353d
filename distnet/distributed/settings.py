"""The distributed trainer's choices that the command line offers too, here where reading them
does not import Ray (which takes a second or more)."""

#: How each step travels between the workers and the parameter server (see DistributedTrainer).
PROTOCOLS = ("auto", "channel", "compiled", "plain")
#: Failures a run recovers from before it ends with FailureLimitError.
DEFAULT_MAX_FAILURES = 3
