function cases = test_kph()
% The binding takes its facts from kp.h, not from copies: reductions and what
% they take and give (kp_reduction_name/_flags), status codes and the error
% identifiers made from their names (kp_status_name), engine values
% (kp_constant) and output shapes (kp_plan_output_shape).
cases = {
  'reductions_as_kp_h_lists_them', @reductions
  'every_reduction_builds_with_its_outputs', @outputs
  'reduction_inputs_checked_from_flags', @inputs
  'status_identifiers_from_kp_h_names', @statuses
  'unknown_reduction_lists_kp_h_names', @() expect_error(@() kp_genred('x', {'x = Vi(1)'}, 'Summ', 1), 'libkp:formula', 'KMin_ArgKMin')
  'output_shape_error_from_libkp', @() expect_error(@() no_rows(), 'libkp:shape', 'number of rows')
};
end

function reductions()
r = kp_mex('reductions');
names = {r.name};
if numel(names) < 12 || numel(unique(names)) ~= numel(names)
  error('kp_mex(''reductions'') gives %d names', numel(names));
end
for k = 1:numel(r)   % each flag the way kp.h defines it
  if r(k).takes_k ~= ~isempty(regexp(r(k).name, '^(KMin|ArgKMin|KMin_ArgKMin)$', 'once'))
    error('%s: takes_k is %d', r(k).name, r(k).takes_k);
  end
  if r(k).indices ~= ~isempty(strfind(r(k).name, 'Arg')), error('%s: indices', r(k).name); end
  if ~r(k).values && ~r(k).indices, error('%s: no output', r(k).name); end
end
end

function outputs()
r = kp_mex('reductions');
al = {'x = Vi(2)', 'y = Vj(2)', 'w = Vj(1)'};
x = rand(5, 2); y = rand(7, 2); w = rand(7, 1);
for k = 1:numel(r)
  if r(k).takes_k
    f = kp_genred('SqDist(x,y)', al, r(k).name, 1, 2); width = 2;
  elseif r(k).takes_g
    f = kp_genred('-SqDist(x,y)', al, r(k).name, 1, 'w'); width = 1;
  else
    f = kp_genred('-SqDist(x,y)', al, r(k).name, 1); width = 1;
  end
  info = kp_info(f);
  if (info.out_dim > 0) ~= r(k).values || (info.out_index_dim > 0) ~= r(k).indices
    error('%s: out_dim %d, out_index_dim %d disagree with kp.h''s flags', r(k).name, info.out_dim, info.out_index_dim);
  end
  outs = cell(1, r(k).values + r(k).indices);
  [outs{:}] = f(x, y, w);
  for o = 1:numel(outs)
    if ~isequal(size(outs{o}), [5, width]), error('%s: output %d is %s', r(k).name, o, mat2str(size(outs{o}))); end
  end
end
end

function inputs()
expect_error(@() kp_genred('SqDist(x,y)', {'x = Vi(1)', 'y = Vj(1)'}, 'ArgKMin', 1), 'libkp:argument', 'takes K');
expect_error(@() kp_genred('SqDist(x,y)', {'x = Vi(1)', 'y = Vj(1)'}, 'Sum', 1, 3), 'libkp:argument', 'takes no');
expect_error(@() kp_genred('x', {'x = Vi(1)'}, 'SumSoftMaxWeight', 1), 'libkp:argument', 'second formula');
end

function statuses()
s = kp_mex('statuses');
if numel(s) < 11 || ~strcmp(s(1).name, 'KP_OK'), error('kp_mex(''statuses'') gives %d codes', numel(s)); end
for k = 2:numel(s)
  if s(k).code ~= k - 1, error('code %d at %d', s(k).code, k); end
  parts = strsplit(lower(regexprep(s(k).name, '^KP_ERR_', '')), '_');
  for p = 2:numel(parts), parts{p}(1) = upper(parts{p}(1)); end
  want = ['libkp:' parts{:}];
  if strcmp(s(k).name, 'KP_ERR_PARSE'), want = 'libkp:formula'; end
  if strcmp(s(k).name, 'KP_ERR_OOM'), want = 'libkp:outOfMemory'; end
  if ~strcmp(s(k).id, want), error('%s raises %s, expected %s', s(k).name, s(k).id, want); end
end
end

function no_rows()
f = kp_genred('Sum(y)', {'y = Vj(1)'}, 'Sum', 1);   % axis 1 without any Vi: no row count
f(rand(4, 1));
end
