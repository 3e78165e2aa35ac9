# Open MPI settings for running as root on a small machine (ENVIRONMENT.md). Source it.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1   # more ranks than cores
export OMPI_MCA_mpi_yield_when_idle=1        # without it 8 ranks on 2 cores busy-poll ~1000x slower
