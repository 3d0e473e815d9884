function nfail = run_tests(pattern)
%RUN_TESTS  Runs the libkp binding's tests: every test_*.m in this folder.
%   NFAIL = RUN_TESTS() runs them and prints one line per test and a closing
%   line "N passed, M failed"; RUN_TESTS(PATTERN) runs only the files whose
%   name matches PATTERN (a regular expression). Each test file returns a
%   list of {name, handle} cases; a case passes when its handle returns.
here = fileparts(mfilename('fullpath'));
addpath(here);
addpath(fileparts(here));
if nargin < 1, pattern = ''; end
files = dir(fullfile(here, 'test_*.m'));
npass = 0;
nfail = 0;
for i = 1:numel(files)
  name = files(i).name(1:end-2);
  if ~isempty(pattern) && isempty(regexp(name, pattern, 'once'))
    continue;
  end
  cases = feval(name);
  for c = 1:size(cases, 1)
    label = sprintf('%s/%s', name, cases{c, 1});
    t0 = tic;
    try
      cases{c, 2}();
      npass = npass + 1;
      fprintf('PASS %-55s %6.2f s\n', label, toc(t0));
    catch err
      nfail = nfail + 1;
      fprintf('FAIL %s: %s\n', label, err.message);
      for s = 1:min(numel(err.stack), 3)
        fprintf('       at %s line %d\n', err.stack(s).name, err.stack(s).line);
      end
    end
  end
end
fprintf('%d passed, %d failed\n', npass, nfail);
end
