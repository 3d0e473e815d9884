# The CPU engine's compiled kernels (src/jit, jit.h): LLVM's ORC JIT through
# its C API (LLVM 14 or newer), and clang of the same LLVM to compile the op
# bitcode. KP_JIT defaults to ON when both are found; OFF builds jit_none.c
# and the interpreter runs everything.
find_program(KP_LLVM_CONFIG NAMES llvm-config llvm-config-19 llvm-config-18 llvm-config-17 llvm-config-16
             llvm-config-15 llvm-config-14)
set(_kp_jit_found OFF)
if(KP_LLVM_CONFIG)
  execute_process(COMMAND ${KP_LLVM_CONFIG} --version OUTPUT_VARIABLE _kp_llvm_version OUTPUT_STRIP_TRAILING_WHITESPACE)
  execute_process(COMMAND ${KP_LLVM_CONFIG} --includedir OUTPUT_VARIABLE _kp_llvm_inc OUTPUT_STRIP_TRAILING_WHITESPACE)
  execute_process(COMMAND ${KP_LLVM_CONFIG} --libdir OUTPUT_VARIABLE _kp_llvm_libdir OUTPUT_STRIP_TRAILING_WHITESPACE)
  execute_process(COMMAND ${KP_LLVM_CONFIG} --bindir OUTPUT_VARIABLE _kp_llvm_bindir OUTPUT_STRIP_TRAILING_WHITESPACE)
  string(REGEX MATCH "^[0-9]+" _kp_llvm_major "${_kp_llvm_version}")
  # The bitcode must come from a clang no newer than the LLVM that reads it.
  find_program(KP_JIT_CLANG NAMES clang clang-${_kp_llvm_major} HINTS ${_kp_llvm_bindir} NO_DEFAULT_PATH)
  if(NOT KP_JIT_CLANG)
    find_program(KP_JIT_CLANG NAMES clang-${_kp_llvm_major})
  endif()
  find_program(KP_LLVM_LINK NAMES llvm-link HINTS ${_kp_llvm_bindir} NO_DEFAULT_PATH)
  find_library(KP_LLVM_LIBRARY NAMES LLVM LLVM-${_kp_llvm_major} HINTS ${_kp_llvm_libdir} NO_DEFAULT_PATH)
  if(_kp_llvm_major GREATER_EQUAL 14 AND KP_JIT_CLANG AND KP_LLVM_LINK AND KP_LLVM_LIBRARY
     AND EXISTS "${_kp_llvm_inc}/llvm-c/LLJIT.h")
    set(_kp_jit_found ON)
  endif()
endif()
option(KP_JIT "Compile formulas to native code at run time (LLVM ORC JIT)" ${_kp_jit_found})

if(KP_JIT)
  if(NOT _kp_jit_found)
    message(FATAL_ERROR "KP_JIT=ON needs LLVM >= 14 (llvm-config, llvm-link, libLLVM, llvm-c/LLJIT.h) and its clang "
                        "(Debian: apt-get install llvm-dev clang), or -DKP_JIT=OFF")
  endif()
  message(STATUS "KP_JIT: LLVM ${_kp_llvm_version} (${KP_LLVM_LIBRARY}), bitcode by ${KP_JIT_CLANG}")
  set(_kp_bc ${CMAKE_CURRENT_BINARY_DIR}/jit_ops.bc)
  set(_kp_bc_c ${CMAKE_CURRENT_BINARY_DIR}/jit_bitcode.c)
  set(_kp_clang_flags -O2 -fno-math-errno -ffp-contract=fast -std=c11 -Wall -Wno-psabi
      -I${PROJECT_SOURCE_DIR}/include -I${CMAKE_CURRENT_SOURCE_DIR} -emit-llvm -c)
  file(GLOB _kp_device_src ${CMAKE_CURRENT_SOURCE_DIR}/device/*)
  # jit_ops.c (vector exp), and jit_seval.c once per precision (the device
  # sources take one real type per translation unit), joined by llvm-link.
  add_custom_command(OUTPUT ${_kp_bc}
    COMMAND ${KP_JIT_CLANG} ${_kp_clang_flags} ${CMAKE_CURRENT_SOURCE_DIR}/jit/jit_ops.c -o jit_ops_vec.bc
    COMMAND ${KP_JIT_CLANG} ${_kp_clang_flags} -DKP_REAL_F32=1 ${CMAKE_CURRENT_SOURCE_DIR}/jit/jit_seval.c -o jit_seval_f32.bc
    COMMAND ${KP_JIT_CLANG} ${_kp_clang_flags} -DKP_REAL_F32=0 ${CMAKE_CURRENT_SOURCE_DIR}/jit/jit_seval.c -o jit_seval_f64.bc
    COMMAND ${KP_LLVM_LINK} jit_ops_vec.bc jit_seval_f32.bc jit_seval_f64.bc -o ${_kp_bc}
    WORKING_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR}
    DEPENDS jit/jit_ops.c jit/jit_seval.c formula/scalar_eval.h formula/ops.def formula/node.h ${_kp_device_src}
    COMMENT "Compiling the JIT's op bitcode")
  add_custom_command(OUTPUT ${_kp_bc_c}
    COMMAND ${CMAKE_COMMAND} -DIN=${_kp_bc} -DOUT=${_kp_bc_c} -P ${CMAKE_CURRENT_SOURCE_DIR}/jit/embed.cmake
    DEPENDS ${_kp_bc} jit/embed.cmake)
  target_sources(kp_objects PRIVATE jit/jit.c jit/jit_codegen.c jit/jit_llvm.c ${_kp_bc_c})
  target_include_directories(kp_objects SYSTEM PRIVATE ${_kp_llvm_inc})
  # Newer LLVMs mark C API functions deprecated before removing them; the
  # functions used are those of LLVM 14 to 19, so a deprecation is no error.
  set_source_files_properties(jit/jit.c jit/jit_codegen.c jit/jit_llvm.c PROPERTIES
    COMPILE_OPTIONS "-Wno-deprecated-declarations")
  # libLLVM is loaded on the first compile (jit_llvm.c), not linked.
  get_filename_component(_kp_llvm_real ${KP_LLVM_LIBRARY} REALPATH)
  set_property(SOURCE jit/jit_llvm.c APPEND PROPERTY COMPILE_DEFINITIONS KP_LLVM_LIBRARY="${_kp_llvm_real}")
  find_package(Threads REQUIRED)
  target_link_libraries(kp_objects PUBLIC ${CMAKE_DL_LIBS} Threads::Threads)
else()
  target_sources(kp_objects PRIVATE jit/jit_none.c)
endif()
