function assert_close(got, want, rtol, what)
% Fails unless got and want have the same size and |got - want| <= rtol * max(1, max|want|)
% elementwise (NaN only where want is NaN).
if nargin < 4, what = 'value'; end
if ~isequal(size(got), size(want))
  error('%s: size %s, expected %s', what, mat2str(size(got)), mat2str(size(want)));
end
got = double(got);
want = double(want);
if ~isequal(isnan(got), isnan(want))
  error('%s: NaN at different places', what);
end
ok = ~isnan(want);
scale = max(1, max(abs(want(ok))));
err = max([0; abs(got(ok) - want(ok))]);
if isempty(scale), scale = 1; end
if err > rtol * scale
  error('%s: max error %.3g > %.3g (scale %.3g)', what, err, rtol * scale, scale);
end
end
