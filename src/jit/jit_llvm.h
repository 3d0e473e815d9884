/*
 * jit_llvm.h — LLVM's C API, loaded at run time (dlopen) on the first compile.
 *
 * libkp does not link libLLVM: loading it costs tens of milliseconds at every
 * process start and it may be absent where libkp runs. The functions the JIT
 * calls are members of kp__llvm, filled by kp__llvm_load from the library
 * found at build time (KP_LLVM_LIBRARY, its full path, then its file name).
 * The llvm-c headers give their types.
 */
#ifndef KP_JIT_LLVM_H
#define KP_JIT_LLVM_H

#include <llvm-c/Analysis.h>
#include <llvm-c/BitReader.h>
#include <llvm-c/Core.h>
#include <llvm-c/Error.h>
#include <llvm-c/LLJIT.h>
#include <llvm-c/Orc.h>
#include <llvm-c/Target.h>
#include <llvm-c/TargetMachine.h>
#include <llvm-c/Transforms/PassBuilder.h>
#include <stddef.h>

/* Every LLVM function the JIT calls (LLVM 14 to 19 have them all). */
#define KP_LLVM_FUNCS(X) \
    X(LLVMAddAttributeAtIndex) \
    X(LLVMAddFunction) \
    X(LLVMAddIncoming) \
    X(LLVMAddTargetDependentFunctionAttr) \
    X(LLVMAppendBasicBlockInContext) \
    X(LLVMBuildAdd) \
    X(LLVMBuildAlloca) \
    X(LLVMBuildAnd) \
    X(LLVMBuildBitCast) \
    X(LLVMBuildBr) \
    X(LLVMBuildCall2) \
    X(LLVMBuildCondBr) \
    X(LLVMBuildExtractElement) \
    X(LLVMBuildFAdd) \
    X(LLVMBuildFCmp) \
    X(LLVMBuildFDiv) \
    X(LLVMBuildFMul) \
    X(LLVMBuildFNeg) \
    X(LLVMBuildFSub) \
    X(LLVMBuildGEP2) \
    X(LLVMBuildICmp) \
    X(LLVMBuildInsertElement) \
    X(LLVMBuildLoad2) \
    X(LLVMBuildOr) \
    X(LLVMBuildPhi) \
    X(LLVMBuildRetVoid) \
    X(LLVMBuildSelect) \
    X(LLVMBuildShuffleVector) \
    X(LLVMBuildStore) \
    X(LLVMConstInt) \
    X(LLVMConstNull) \
    X(LLVMConstReal) \
    X(LLVMConstVector) \
    X(LLVMCreateBuilderInContext) \
    X(LLVMCreateEnumAttribute) \
    X(LLVMCreateMemoryBufferWithMemoryRange) \
    X(LLVMCreateMemoryBufferWithMemoryRangeCopy) \
    X(LLVMCreatePassBuilderOptions) \
    X(LLVMCreateTargetMachine) \
    X(LLVMDisposeBuilder) \
    X(LLVMDisposeErrorMessage) \
    X(LLVMDisposeMemoryBuffer) \
    X(LLVMDisposeMessage) \
    X(LLVMDisposeModule) \
    X(LLVMDisposePassBuilderOptions) \
    X(LLVMDoubleTypeInContext) \
    X(LLVMFloatTypeInContext) \
    X(LLVMFunctionType) \
    X(LLVMGetBufferSize) \
    X(LLVMGetBufferStart) \
    X(LLVMGetDefaultTargetTriple) \
    X(LLVMGetEnumAttributeKindForName) \
    X(LLVMGetErrorMessage) \
    X(LLVMGetFirstFunction) \
    X(LLVMGetHostCPUFeatures) \
    X(LLVMGetHostCPUName) \
    X(LLVMGetInsertBlock) \
    X(LLVMGetIntrinsicDeclaration) \
    X(LLVMGetNamedFunction) \
    X(LLVMGetNextFunction) \
    X(LLVMGetParam) \
    X(LLVMGetTargetFromTriple) \
    X(LLVMGetUndef) \
    X(LLVMGetValueName2) \
    X(LLVMGlobalGetValueType) \
    X(LLVMInt1TypeInContext) \
    X(LLVMInt32TypeInContext) \
    X(LLVMInt64TypeInContext) \
    X(LLVMIntrinsicGetType) \
    X(LLVMIsDeclaration) \
    X(LLVMLookupIntrinsicID) \
    X(LLVMOrcCreateDynamicLibrarySearchGeneratorForProcess) \
    X(LLVMOrcCreateLLJIT) \
    X(LLVMOrcCreateLLJITBuilder) \
    X(LLVMOrcCreateNewThreadSafeContext) \
    X(LLVMOrcDisposeThreadSafeContext) \
    X(LLVMOrcJITDylibAddGenerator) \
    X(LLVMOrcJITTargetMachineBuilderDetectHost) \
    X(LLVMOrcLLJITAddObjectFile) \
    X(LLVMOrcLLJITBuilderSetJITTargetMachineBuilder) \
    X(LLVMOrcLLJITGetDataLayoutStr) \
    X(LLVMOrcLLJITGetGlobalPrefix) \
    X(LLVMOrcLLJITGetMainJITDylib) \
    X(LLVMOrcLLJITGetTripleString) \
    X(LLVMOrcLLJITLookup) \
    X(LLVMOrcThreadSafeContextGetContext) \
    X(LLVMParseBitcodeInContext2) \
    X(LLVMPointerType) \
    X(LLVMPositionBuilderAtEnd) \
    X(LLVMRemoveStringAttributeAtIndex) \
    X(LLVMRunPasses) \
    X(LLVMSetAlignment) \
    X(LLVMSetDataLayout) \
    X(LLVMSetLinkage) \
    X(LLVMSetTarget) \
    X(LLVMTargetMachineEmitToMemoryBuffer) \
    X(LLVMVectorType) \
    X(LLVMVerifyModule) \
    X(LLVMVoidTypeInContext)

typedef struct kp_llvm_api {
#define KP_LLVM_FIELD(f) __typeof__(f) *f;
    KP_LLVM_FUNCS(KP_LLVM_FIELD)
#undef KP_LLVM_FIELD
} kp_llvm_api;

extern kp_llvm_api kp__llvm;

/* Loads libLLVM ($KP_JIT_LLVM overrides the path), fills kp__llvm and
 * initializes the native target. Returns 1, or 0 with a message in msg. */
int kp__llvm_load(char *msg, size_t msgsz);

#endif
