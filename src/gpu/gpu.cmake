# GPU engines: kernel generator (CUDA / OpenCL dialects), OpenCL engine,
# CUDA engine, kernel cache, ahead-of-time CUDA kernels. Included from
# src/CMakeLists.txt after the kp_objects target exists. Nothing here needs CUDA
# or OpenCL at build time: both are dlopen'ed at run time; nvcc, when found,
# only adds the ahead-of-time kernel table (aot.cmake).
target_sources(kp_objects PRIVATE
  gpu/codegen.c gpu/codegen_info.c gpu/codegen_prelude.c gpu/codegen_instr.c gpu/codegen_monoid.c gpu/codegen_exact.c gpu/launch.c gpu/host_loop.c gpu/source.c gpu/pack.c gpu/opencl.c gpu/aot_api.c gpu/ranges_table.c
  gpu/cuda.c gpu/cuda_driver.c gpu/cuda_compile.c gpu/cuda_helpers.c gpu/cuda_half.c gpu/kcache.c gpu/progcache.c)
# The device sources (src/device, the common subset of C, CUDA C++ and OpenCL C)
# as C strings that the generator embeds in every kernel (ops.h, monoid.h; exact.h
# in those of KP_SUM_EXACT) and the CUDA engine in its float16 conversion kernels (half.h).
set(KP_DEVICE_SOURCES_C ${CMAKE_CURRENT_BINARY_DIR}/device_sources.c)
add_custom_command(OUTPUT ${KP_DEVICE_SOURCES_C}
  COMMAND ${CMAKE_COMMAND} -DOUT=${KP_DEVICE_SOURCES_C}
    "-DNAMES=kp__device_ops_source;kp__device_monoid_source;kp__device_half_source;kp__device_exact_source"
    "-DFILES=${CMAKE_CURRENT_SOURCE_DIR}/device/ops.h;${CMAKE_CURRENT_SOURCE_DIR}/device/monoid.h;${CMAKE_CURRENT_SOURCE_DIR}/device/half.h;${CMAKE_CURRENT_SOURCE_DIR}/device/exact.h"
    -DHEADER=gpu/device_sources.h -P ${PROJECT_SOURCE_DIR}/cmake/embed_source.cmake
  DEPENDS device/ops.h device/monoid.h device/half.h device/exact.h ${PROJECT_SOURCE_DIR}/cmake/embed_source.cmake
  COMMENT "Embedding the device sources" VERBATIM)
target_sources(kp_objects PRIVATE ${KP_DEVICE_SOURCES_C})
find_package(Threads REQUIRED)
target_link_libraries(kp_objects PUBLIC ${CMAKE_DL_LIBS} Threads::Threads)
# SHA-256 of the kernel cache's keys and of the ahead-of-time table's sources
# (Debian: nettle-dev).
find_path(NETTLE_INCLUDE_DIR nettle/sha2.h REQUIRED)
find_library(NETTLE_LIBRARY nettle REQUIRED)
target_include_directories(kp_objects PRIVATE ${NETTLE_INCLUDE_DIR})
target_link_libraries(kp_objects PUBLIC ${NETTLE_LIBRARY})
include(${CMAKE_CURRENT_LIST_DIR}/aot.cmake)
