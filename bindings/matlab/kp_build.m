function kp_build(libdir, incdir)
%KP_BUILD  Builds the MEX gateway kp_mex of the libkp binding.
%   KP_BUILD() builds against the libkp of this source tree (build/src, the
%   CMake build folder); KP_BUILD(LIBDIR, INCDIR) against the libkp.so in LIBDIR
%   and the kp.h in INCDIR (e.g. '/usr/local/lib', '/usr/local/include').
%   Octave uses mkoctfile --mex, MATLAB mex; the same C sources serve both.
%   The library folder is recorded as the MEX file's run path (rpath), so no
%   LD_LIBRARY_PATH is needed.
here = fileparts(mfilename('fullpath'));
root = fileparts(fileparts(here));
if nargin < 1 || isempty(libdir), libdir = fullfile(root, 'build', 'src'); end
if nargin < 2 || isempty(incdir), incdir = fullfile(root, 'include'); end
if ~exist(fullfile(incdir, 'kp.h'), 'file')
  error('libkp:build', 'libkp: no kp.h in %s', incdir);
end
src = {fullfile(here, 'src', 'kp_mex.c'), fullfile(here, 'src', 'kp_mex_cache.c')};
if exist('OCTAVE_VERSION', 'builtin')
  args = [{'--mex', '-o', fullfile(here, 'kp_mex.mex'), ['-I' incdir], ['-I' fullfile(here, 'src')], ...
           ['-L' libdir], '-lkp', ['-Wl,-rpath,' libdir]}, src];
  [out, status] = mkoctfile(args{:});
  if status ~= 0
    error('libkp:build', 'libkp: mkoctfile failed:\n%s', out);
  end
else
  mex('-outdir', here, '-output', 'kp_mex', ['-I' incdir], ['-I' fullfile(here, 'src')], ['-L' libdir], ...
      '-lkp', ['LDFLAGS=$LDFLAGS -Wl,-rpath,' libdir], src{:});
end
end
