# GPU engines (issue 5): kernel generator (CUDA / OpenCL dialects), OpenCL engine,
# CUDA entry points, ahead-of-time CUDA kernels. Included from src/CMakeLists.txt
# after the kp_objects target exists. Nothing here needs CUDA or OpenCL at build
# time: both are dlopen'ed at run time; nvcc, when found, only adds the
# ahead-of-time kernel table (aot.cmake).
target_sources(kp_objects PRIVATE
  gpu/codegen.c gpu/engine_select.c gpu/opencl.c gpu/cuda.c gpu/aot_api.c)
find_package(Threads REQUIRED)
target_link_libraries(kp_objects PUBLIC ${CMAKE_DL_LIBS} Threads::Threads)
include(${CMAKE_CURRENT_LIST_DIR}/aot.cmake)
