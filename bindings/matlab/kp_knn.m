function [idx, d2] = kp_knn(x, y, K)
%KP_KNN  K nearest neighbours, without the N x M distance matrix.
%   [IDX, D2] = KP_KNN(X, Y, K) with X (N x D) queries and Y (M x D) points
%   returns IDX (N x K), the 1-based row numbers in Y of the K nearest points
%   of each query by Euclidean distance, nearest first (ties: smallest index),
%   and D2 (N x K) their squared distances. IDX is double (exact for any M);
%   D2 has the class of the inputs.
%
%   Example:
%     idx = kp_knn(xtest, xtrain, 5);
%     pred = mode(labels(idx), 2);
%
%   See also KP_GENRED.
if nargin < 3
  error('libkp:argument', 'libkp: kp_knn needs x, y and K');
end
if ~isnumeric(K) || ~isscalar(K) || ~isreal(K) || K < 1 || K ~= round(K)
  error('libkp:argument', 'libkp: K must be a positive integer');
end
% handles by dimension, K and outputs: kp_genred's interpreted code costs
% about 1 ms, a lookup here a few microseconds
persistent keys handles
ckey = sprintf('%d|%d|%d', size(x, 2), K, nargout > 1);
hit = find(strcmp(keys, ckey), 1);
if isempty(hit)
  d = size(x, 2);
  aliases = {sprintf('x = Vi(%d)', d), sprintf('y = Vj(%d)', d)};
  if nargout < 2
    f = kp_genred('SqDist(x,y)', aliases, 'ArgKMin', 1, K);
  else
    f = kp_genred('SqDist(x,y)', aliases, 'KMin_ArgKMin', 1, K);
  end
  if numel(keys) >= 64, keys = {}; handles = {}; end
  keys{end + 1} = ckey; handles{end + 1} = f;
  hit = numel(keys);
end
f = handles{hit};
if nargout < 2
  idx = f(x, y);
else
  [d2, idx] = f(x, y);
end
end
