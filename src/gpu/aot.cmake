# Ahead-of-time CUDA kernels (src/gpu/aot.h). Included from gpu.cmake.
#
# Defines the object library kp_aot (aot.c and the kernel table) that
# libkp links. With nvcc (KP_CUDA_AOT = AUTO and nvcc found, or ON), the table
# is generated at build time: kp_aot_gen (linked against libkp's own objects,
# with the empty table) prints the standard kernels and compiles each with
# nvcc into a fatbin; the fatbins are embedded with .incbin. Without nvcc the
# table is empty (aot_table_empty.c) and every kernel goes through NVRTC.
#
# For tests/gpu (cache, internal): KP_CUDA_AOT_TARGETS_TEXT, the targets of the
# table ("sm_75 sm_80 sm_90 compute_75"; empty without the table).
set(KP_CUDA_AOT "AUTO" CACHE STRING
  "Ahead-of-time CUDA kernels in libkp: AUTO (when nvcc is found), ON (nvcc required), OFF")
set_property(CACHE KP_CUDA_AOT PROPERTY STRINGS AUTO ON OFF)
# SASS for these (those the nvcc in use cannot target are dropped: CUDA 13 has no
# sm_70/72), and one PTX for every newer GPU (JIT-compiled by the driver).
# sm_86 and sm_89 GPUs run the sm_80 SASS (same major version: binary
# compatible), so 75;80;90 covers every GPU from 7.5 to 9.x without JIT; add
# 86;89 for their own scheduling at about 0.075 s and 5 KB per kernel each.
set(KP_CUDA_AOT_ARCHS "75;80;90" CACHE STRING "SASS architectures of the ahead-of-time kernels")
set(KP_CUDA_AOT_PTX "75" CACHE STRING "Virtual architecture of the PTX embedded with the ahead-of-time kernels")

set(KP_CUDA_AOT_ENABLED OFF)
set(KP_CUDA_AOT_TARGET_LIST "")
string(TOUPPER "${KP_CUDA_AOT}" _kp_aot_mode)
if(NOT _kp_aot_mode STREQUAL "OFF")
  file(GLOB _kp_cuda_bins /usr/local/cuda/bin /usr/local/cuda-*/bin)
  find_program(KP_NVCC nvcc HINTS ENV CUDA_PATH ENV CUDA_HOME PATH_SUFFIXES bin PATHS ${_kp_cuda_bins})
  if(KP_NVCC)
    execute_process(COMMAND "${KP_NVCC}" --list-gpu-code OUTPUT_VARIABLE _kp_codes RESULT_VARIABLE _kp_rc
                    ERROR_QUIET OUTPUT_STRIP_TRAILING_WHITESPACE)
    execute_process(COMMAND "${KP_NVCC}" --version OUTPUT_VARIABLE _kp_nvcc_version ERROR_QUIET)
    string(REGEX MATCH "release ([0-9]+)\\.([0-9]+)" _kp_release "${_kp_nvcc_version}")
    set(_kp_nvcc_major "${CMAKE_MATCH_1}")
    set(_kp_sass "")
    if(_kp_rc EQUAL 0)
      string(REPLACE "\n" ";" _kp_codes "${_kp_codes}")
      foreach(_a IN LISTS KP_CUDA_AOT_ARCHS)
        if("sm_${_a}" IN_LIST _kp_codes)
          list(APPEND _kp_sass "sm_${_a}")
        endif()
      endforeach()
    endif()
    if(_kp_sass AND "sm_${KP_CUDA_AOT_PTX}" IN_LIST _kp_codes)
      set(KP_CUDA_AOT_ENABLED ON)
    endif()
  endif()
  if(NOT KP_CUDA_AOT_ENABLED)
    if(_kp_aot_mode STREQUAL "ON")
      message(FATAL_ERROR "KP_CUDA_AOT=ON but no nvcc that targets ${KP_CUDA_AOT_ARCHS} was found (KP_NVCC=${KP_NVCC})")
    endif()
    message(STATUS "libkp: no ahead-of-time CUDA kernels (nvcc not found or without the target architectures)")
  endif()
endif()

if(KP_CUDA_AOT_ENABLED)
  set(KP_CUDA_AOT_TARGET_LIST ${_kp_sass} "compute_${KP_CUDA_AOT_PTX}")
  string(REPLACE ";" "," _kp_code "${KP_CUDA_AOT_TARGET_LIST}")
  string(REPLACE ";" " " _kp_targets "${KP_CUDA_AOT_TARGET_LIST}")
  # One front end per kernel: every SASS target is assembled from the
  # compute_<PTX> code, and that PTX is embedded for GPUs newer than the list.
  # The front end is NVRTC when the toolkit has it (what the CUDA engine runs;
  # twice faster than nvcc's), else nvcc itself. Both with their defaults, which
  # agree: no fast math, FMA contraction on.
  get_filename_component(_kp_cuda_root "${KP_NVCC}" DIRECTORY)
  get_filename_component(_kp_cuda_root "${_kp_cuda_root}" DIRECTORY)
  find_library(KP_AOT_NVRTC_LIBRARY nvrtc HINTS "${_kp_cuda_root}/lib64" "${_kp_cuda_root}/lib" NO_DEFAULT_PATH)
  set(_kp_front_end "")
  if(KP_AOT_NVRTC_LIBRARY)
    set(_kp_front_end --nvrtc "${KP_AOT_NVRTC_LIBRARY}" --nvrtc-arch "compute_${KP_CUDA_AOT_PTX}")
  endif()
  set(_kp_nvcc_cmd "${KP_NVCC}" -fatbin -w "-arch=compute_${KP_CUDA_AOT_PTX}" "-code=${_kp_code}")
  if(_kp_nvcc_major GREATER_EQUAL 13)
    # Smallest images; decompressed by the driver at load. A CUDA 13 build needs
    # a CUDA 13 driver (r580+) anyway, which reads this compression.
    list(APPEND _kp_nvcc_cmd -compress-mode=size)
  endif()
  cmake_host_system_information(RESULT _kp_cores QUERY NUMBER_OF_LOGICAL_CORES)
  set(_kp_aot_dir "${CMAKE_CURRENT_BINARY_DIR}/cuda_aot")

  # The generator: libkp's objects with the empty table (it runs before the table exists).
  add_library(kp_aot_none OBJECT gpu/aot.c gpu/aot_table_empty.c)
  target_include_directories(kp_aot_none PRIVATE ${CMAKE_CURRENT_SOURCE_DIR} ${NETTLE_INCLUDE_DIR})
  target_link_libraries(kp_aot_none PUBLIC ${NETTLE_LIBRARY})
  target_compile_options(kp_aot_none PRIVATE ${KP_WARNINGS})
  add_executable(kp_aot_gen gpu/aot_gen.c gpu/aot_set.c)
  target_link_libraries(kp_aot_gen PRIVATE kp_objects kp_aot_none)
  target_compile_options(kp_aot_gen PRIVATE ${KP_WARNINGS})

  # Runs on every build where kp_aot_gen changed (a few seconds: the sources are
  # regenerated and hashed); only kernels whose source changed are recompiled
  # (cache/), and aot_table.c is rewritten only when its content changes.
  add_custom_command(
    OUTPUT "${_kp_aot_dir}/aot.stamp"
    BYPRODUCTS "${_kp_aot_dir}/aot_table.c" "${_kp_aot_dir}/aot_blob.bin"
    COMMAND kp_aot_gen --out "${_kp_aot_dir}" --jobs ${_kp_cores} --targets "${_kp_targets}" ${_kp_front_end}
            -- ${_kp_nvcc_cmd}
    COMMAND ${CMAKE_COMMAND} -E touch "${_kp_aot_dir}/aot.stamp"
    DEPENDS kp_aot_gen
    COMMENT "Ahead-of-time CUDA kernels (nvcc, ${_kp_targets})"
    VERBATIM)
  add_custom_target(kp_cuda_aot_table DEPENDS "${_kp_aot_dir}/aot.stamp")
  add_library(kp_aot OBJECT gpu/aot.c "${_kp_aot_dir}/aot_table.c")
  add_dependencies(kp_aot kp_cuda_aot_table)
  message(STATUS "libkp: ahead-of-time CUDA kernels for ${_kp_targets} (${KP_NVCC}; front end: "
                 "${KP_AOT_NVRTC_LIBRARY})")
else()
  set(_kp_targets "")
  add_library(kp_aot OBJECT gpu/aot.c gpu/aot_table_empty.c)
endif()
target_include_directories(kp_aot PRIVATE ${CMAKE_CURRENT_SOURCE_DIR} ${NETTLE_INCLUDE_DIR})
target_link_libraries(kp_aot PUBLIC ${NETTLE_LIBRARY})
target_compile_options(kp_aot PRIVATE ${KP_WARNINGS})
set(KP_CUDA_AOT_TARGETS_TEXT "${_kp_targets}" CACHE INTERNAL "targets of the ahead-of-time CUDA kernels")
