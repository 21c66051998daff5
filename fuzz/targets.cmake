# The fuzz targets and the libraries each one links, shared by fuzz/CMakeLists.txt (libFuzzer
# binaries, MT_FUZZ=ON with clang) and tests/fuzz/CMakeLists.txt (the corpus replay tests of
# every build). Sets MT_FUZZ_TARGETS and MT_FUZZ_LIBS_<name>; a target whose modules are not
# built is left out.
set(MT_FUZZ_TARGETS expr)
set(MT_FUZZ_LIBS_expr mt_graph mt_core)
if(TARGET mt_data)
  find_package(ZLIB REQUIRED) # fuzz_idx gzips inputs itself
  list(APPEND MT_FUZZ_TARGETS npy idx cifar)
  set(MT_FUZZ_LIBS_npy mt_data mt_gpuarray mt_core)
  set(MT_FUZZ_LIBS_idx mt_data mt_gpuarray mt_core ZLIB::ZLIB)
  set(MT_FUZZ_LIBS_cifar mt_data mt_gpuarray mt_core)
endif()
if(TARGET mt_train AND TARGET mt_config)
  list(APPEND MT_FUZZ_TARGETS yaml)
  set(MT_FUZZ_LIBS_yaml mt_train mt_config mt_core)
endif()
# Without HDF5 the checkpoint reader only answers ERR_NOT_BUILT: nothing to fuzz or replay.
if(TARGET mt_io AND MT_WITH_HDF5)
  list(APPEND MT_FUZZ_TARGETS ckpt)
  set(MT_FUZZ_LIBS_ckpt mt_io mt_gpuarray mt_core)
endif()
# The sweep journal: sweep-report's reader and the resume replay (fuzz_journal.c includes
# src/hyperopt/sweep_impl.h for the replay, which has no public entry of its own).
if(TARGET mt_sweep)
  list(APPEND MT_FUZZ_TARGETS journal)
  set(MT_FUZZ_LIBS_journal mt_sweep mt_hyperopt mt_train mt_io mt_comm mt_config mt_jit mt_graph
      mt_gpuarray mt_core)
endif()
