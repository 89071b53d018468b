# Kernel configuration of the perturbed notebook run: IPYTHONDIR points at tools/perturbed/ipython.
# Keep no history database in the repository.
c = get_config()  # noqa: F821 (IPython defines it when it reads this file)
c.HistoryManager.enabled = False
