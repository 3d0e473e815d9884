# GPU engines (issue 5): kernel generator (CUDA / OpenCL dialects), OpenCL engine,
# CUDA entry points. Included from src/CMakeLists.txt after the kp target exists.
# Nothing here needs CUDA or OpenCL at build time: both are dlopen'ed at run time.
target_sources(kp PRIVATE
  gpu/codegen.c gpu/engine_select.c gpu/pack.c gpu/opencl.c gpu/aot.c
  gpu/cuda.c gpu/cuda_driver.c gpu/cuda_compile.c gpu/cuda_helpers.c gpu/kcache.c)
find_package(Threads REQUIRED)
target_link_libraries(kp PRIVATE ${CMAKE_DL_LIBS} Threads::Threads)
# SHA-256 of the kernel cache's keys and payloads (Debian: nettle-dev).
find_path(NETTLE_INCLUDE_DIR nettle/sha2.h REQUIRED)
find_library(NETTLE_LIBRARY nettle REQUIRED)
target_include_directories(kp PRIVATE ${NETTLE_INCLUDE_DIR})
target_link_libraries(kp PRIVATE ${NETTLE_LIBRARY})
